//! What a command owns and nothing more: a full disk is an error naming the file (never a
//! crash, never a lost export or embedding), `embed` and `sweep` leave others' files
//! alone, dataset paths stay under the root, caches shared by concurrent runs are locked,
//! runs are usable from any directory, special files are refused as images, and a signal
//! stops a run at a safe point with the command that continues it.

use crate::common::{copy_dir, debug_cfg, project_root, temp_dir, Tmpfs};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tgcn() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tgcn"));
    c.current_dir(project_root()).env("OMP_NUM_THREADS", "1");
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A tiny synthetic run with its export, trained in-process (seconds).
fn tiny_run(folder: &str, sets: &[&str]) -> PathBuf {
    let mut all = vec!["train.epochs=1", "train.pairs_per_epoch=500"];
    all.extend_from_slice(sets);
    let cfg = debug_cfg("tiny", &all);
    tgcn::train::train(&cfg, &temp_dir(folder), &Default::default()).unwrap().summary().unwrap().run
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// `tgcn export` on a full disk: an error naming the export and the full disk (libtorch's
/// own writer ended the process with `terminate called …`, exit 134), the previous export
/// untouched and nothing left behind; with room again, the same command writes it.
#[test]
fn export_on_a_full_disk_is_an_error_and_keeps_the_previous_export() {
    let run = tiny_run("safety_export_src", &[]);
    let Some(fs) = Tmpfs::mount("safety_export_tmpfs", "8m") else { return };
    let copy = fs.0.join("run");
    copy_dir(&run, &copy);
    let before = std::fs::read(copy.join("export/text_encoder.pt")).unwrap();
    fs.fill(20 << 10);
    let out = tgcn().args(["export", "--run", copy.to_str().unwrap()]).output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "an error, not a crash:\n{t}");
    assert!(t.contains("the export to") && t.contains("was not written; the previous export is unchanged"), "{t}");
    assert!(t.contains("the disk is full") || t.contains("No space left"), "{t}");
    assert_eq!(std::fs::read(copy.join("export/text_encoder.pt")).unwrap(), before);
    assert!(!copy.join("export.partial").exists() && !copy.join("export.old").exists());
    fs.empty();
    let out = tgcn().args(["export", "--run", copy.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(copy.join("export/scorer.pt").is_file() && !copy.join("export.old").exists());
}

/// `tgcn embed --out DIR` writes only its own files: a FAISS index the user put there and
/// a folder of theirs named `DIR.partial` survive a second embed; a full disk is found
/// before the work, and leaves the earlier embeddings as they were.
#[test]
fn embed_keeps_files_it_did_not_write_and_checks_the_disk_first() {
    let run = tiny_run("safety_embed_run", &["export.enabled=false"]);
    let dir = temp_dir("safety_embed_out");
    let out = dir.join("emb");
    let embed = |out: &Path| {
        tgcn().args(["embed", "--run", run.to_str().unwrap(), "--out", out.to_str().unwrap()]).output().unwrap()
    };
    let o = embed(&out);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(out.join("image.faiss"), b"the user's index").unwrap();
    let partial = dir.join("emb.partial");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("keep.txt"), b"mine").unwrap();
    let o = embed(&out);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("image.faiss (not written by `tgcn embed`, left as they are)"), "{}", text(&o));
    assert_eq!(std::fs::read(out.join("image.faiss")).unwrap(), b"the user's index");
    assert_eq!(std::fs::read(partial.join("keep.txt")).unwrap(), b"mine");
    let mut expected: Vec<String> = tgcn::retrieve::embed::FILES.iter().map(|s| s.to_string()).collect();
    expected.push("image.faiss".into());
    expected.sort();
    assert_eq!(file_names(&out), expected);

    // A full disk: refused before the embeddings are computed, the earlier ones intact.
    let Some(fs) = Tmpfs::mount("safety_embed_tmpfs", "4m") else { return };
    let target = fs.0.join("emb");
    copy_dir(&out, &target);
    let text_before = std::fs::read(target.join("text.npy")).unwrap();
    fs.fill(1 << 10);
    let o = embed(&target);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("the disk is full") || t.contains("not enough disk space"), "{t}");
    assert_eq!(std::fs::read(target.join("text.npy")).unwrap(), text_before);
    let mut names = file_names(&target);
    names.retain(|n| n.ends_with(".tmp"));
    assert!(names.is_empty(), "temporary files left: {names:?}");
}

/// A sweep folder belongs to one sweep: a different grid in it is refused and its tables
/// stay; a user's folder at a trial's path is not deleted; a bad `--best-out` fails before
/// any trial trains.
#[test]
fn sweeps_keep_to_their_own_folder() {
    let dir = temp_dir("safety_sweep");
    let base = dir.join("small.yaml");
    std::fs::write(
        &base,
        "device: cpu\ndata:\n  synthetic: {train: 120, val: 40, test: 40, words_per_class: 20, shared_words: 40}\n\
         model: {embed_dim: 16}\ntrain: {epochs: 1, pairs_per_epoch: 300, batch_size: 50}\nexport: {enabled: false}\n",
    )
    .unwrap();
    let out = dir.join("sweep");
    let (b, o) = (base.to_str().unwrap(), out.to_str().unwrap());
    let sweep = |grid: &str, extra: &[&str]| {
        tgcn().args(["sweep", "--config", b, "--grid", grid, "--seeds", "1", "--out", o]).args(extra).output().unwrap()
    };
    // A bad --best-out: refused at once, before training.
    let t0 = Instant::now();
    let r = sweep("train.lr=1e-3", &["--best-out", dir.join("no/such/folder/best.yaml").to_str().unwrap()]);
    assert!(
        !r.status.success() && text(&r).contains("--best-out") && text(&r).contains("does not exist"),
        "{}",
        text(&r)
    );
    assert!(!out.join("runs").exists() && t0.elapsed() < Duration::from_secs(20), "nothing trained");

    let r = sweep("train.lr=1e-3", &[]);
    assert!(r.status.success(), "{}", text(&r));
    let trials = std::fs::read(out.join("trials.csv")).unwrap();
    let r = sweep("train.lr=2e-3", &[]);
    let t = text(&r);
    assert!(!r.status.success() && t.contains("holds another sweep") && t.contains("name a new --out"), "{t}");
    assert_eq!(std::fs::read(out.join("trials.csv")).unwrap(), trials, "the first sweep's table is kept");

    // A folder of the user's at a trial's path (no checkpoint, a file a run does not write).
    let out2 = dir.join("sweep2");
    let r = tgcn()
        .args(["sweep", "--config", b, "--grid", "train.lr=1e-3", "--seeds", "1", "--out", out2.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", text(&r));
    let trial = std::fs::read_dir(out2.join("runs/synthetic")).unwrap().next().unwrap().unwrap().path();
    std::fs::remove_dir_all(&trial).unwrap();
    std::fs::create_dir_all(&trial).unwrap();
    std::fs::write(trial.join("notes.md"), b"my notes").unwrap();
    let r = tgcn()
        .args(["sweep", "--config", b, "--grid", "train.lr=1e-3", "--seeds", "1", "--out", out2.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(text(&r).contains("is in the way of a trial: it holds notes.md"), "{}", text(&r));
    assert_eq!(std::fs::read(trial.join("notes.md")).unwrap(), b"my notes");
}

/// List-file ids that would leave the dataset root are refused with the line; image
/// symlinks that point outside the image folder are counted and named.
#[test]
fn dataset_paths_stay_under_the_root() {
    let dir = temp_dir("safety_escape");
    let list = dir.join("train.list");
    std::fs::write(&list, "a1\timg1\t1\n../../secret/stolen\timg2\t1\n").unwrap();
    let e = format!("{:#}", tgcn::data::listed::read_list(&list).unwrap_err());
    assert!(e.contains("train.list:2") && e.contains("\"../../secret/stolen\"") && e.contains("outside"), "{e}");
    std::fs::write(&list, "a1\t/etc/passwd\t1\n").unwrap();
    assert!(format!("{:#}", tgcn::data::listed::read_list(&list).unwrap_err()).contains("image id \"/etc/passwd\""));
    std::fs::write(&list, "sub/a1\timg1\t1\n").unwrap();
    assert_eq!(tgcn::data::listed::read_list(&list).unwrap()[0].text_id, "sub/a1", "subfolders are fine");

    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let outside = dir.join("elsewhere.png");
    image::RgbImage::new(4, 4).save(&outside).unwrap();
    image::RgbImage::new(4, 4).save(images.join("inside.png")).unwrap();
    std::os::unix::fs::symlink(&outside, images.join("linked.png")).unwrap();
    std::os::unix::fs::symlink(images.join("inside.png"), images.join("alias.png")).unwrap();
    let l = tgcn::image::featurize::scan_images(&images).unwrap();
    assert_eq!(l.images.len(), 3);
    assert_eq!(l.outside, ["linked.png"], "a link inside the folder is not named");
    let note = l.note(&images).unwrap();
    assert!(
        note.contains("1 image(s)") && note.contains("symlinks to files outside it") && note.contains("linked.png"),
        "{note}"
    );
}

/// Many writers of one file at once: each write is atomic under its own temporary name
/// (a shared `.tmp` name made one of two concurrent writers fail).
#[test]
fn concurrent_atomic_writes_never_collide() {
    let dir = temp_dir("safety_write_atomic");
    let path = dir.join("shared.json");
    std::thread::scope(|s| {
        for k in 0..8 {
            let path = &path;
            s.spawn(move || {
                for i in 0..50 {
                    tgcn::files::write_atomic(path, format!("{k}-{i}").repeat(100).as_bytes()).unwrap();
                }
            });
        }
    });
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with("-49"), "a whole write survives: {}", &text[text.len() - 10..]);
    assert_eq!(file_names(&dir), ["shared.json"], "no temporary file is left");
}

/// The cache lock: a second holder waits until the first lets go.
#[test]
fn a_cache_lock_waits_for_its_holder() {
    let dir = temp_dir("safety_lock");
    let lock = dir.join("x.lock");
    let held = tgcn::files::lock(&lock, "the test cache").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            let _l = tgcn::files::lock(&lock, "the test cache").unwrap();
            tx.send(Instant::now()).unwrap();
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(rx.try_recv().is_err(), "the second holder must wait");
    let released = Instant::now();
    drop(held);
    let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(got >= released);
    t.join().unwrap();
}

/// Two processes preparing one dataset with one empty cache: both succeed and agree
/// (the text-graph cache is written once, under its lock).
#[test]
fn concurrent_runs_share_the_text_graph_cache() {
    let dir = temp_dir("safety_cache_race");
    let root = project_root();
    let children: Vec<_> = (0..2)
        .map(|_| {
            let mut c = tgcn();
            c.current_dir(&dir)
                .args(["data", "--configs", root.join("configs").to_str().unwrap()])
                .args(["--config", root.join("configs/debug/tiny.yaml").to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let outs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for o in &outs {
        assert!(o.status.success(), "{}", text(o));
    }
    assert_eq!(outs[0].stdout, outs[1].stdout, "both prepared the same data");
    let names = file_names(&dir.join("runs/cache"));
    assert_eq!(names.iter().filter(|n| n.starts_with("text-graph-") && n.ends_with(".json")).count(), 1, "{names:?}");
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

/// Free-space checks say what they could not write, and how much was needed and free.
#[test]
fn a_free_space_check_names_the_write() {
    let dir = temp_dir("safety_free");
    assert!(tgcn::files::free_bytes(&dir).is_some_and(|b| b > 0));
    let e = format!("{:#}", tgcn::files::ensure_free(&dir, u64::MAX / 2, "checkpoint `last`").unwrap_err());
    assert!(e.contains("not enough disk space to write checkpoint `last`") && e.contains("is free"), "{e}");
    tgcn::files::ensure_free(&dir.join("not/yet/made"), 1, "a file").unwrap();
    assert_eq!(tgcn::files::human_bytes(1536), "1.5 KiB");
}

/// `/dev/zero`, a FIFO and a folder are refused as image files at once (they used to be
/// read until memory ran out, or block forever).
#[test]
fn special_files_are_refused_as_images() {
    let dir = temp_dir("safety_special");
    let fifo = dir.join("pipe.jpg");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let t0 = Instant::now();
    for (p, why) in [
        (PathBuf::from("/dev/zero"), "not a regular file"),
        (fifo.clone(), "not a regular file"),
        (dir.clone(), "is a folder"),
    ] {
        let e = format!("{:#}", tgcn::image::prep::read_image_file(&p).unwrap_err());
        assert!(e.contains(why), "{}: {e}", p.display());
    }
    assert!(t0.elapsed() < Duration::from_secs(5));
    let big = dir.join("big.jpg");
    std::fs::File::create(&big).unwrap().set_len(tgcn::image::prep::MAX_IMAGE_BYTES + 1).unwrap();
    assert!(format!("{:#}", tgcn::image::prep::read_image_file(&big).unwrap_err()).contains("above the 256 MiB"));
}

/// The report's thumbnails decode by content, like the featurizer: a PNG named `.jpg`
/// shows; a file that is not an image gives none.
#[test]
fn thumbnails_decode_by_content() {
    let dir = temp_dir("safety_thumbs");
    let png_as_jpg = dir.join("photo.jpg");
    image::RgbImage::from_pixel(30, 20, image::Rgb([200, 10, 10]))
        .save_with_format(&png_as_jpg, image::ImageFormat::Png)
        .unwrap();
    assert!(image::open(&png_as_jpg).is_err(), "the fixture must fool a decoder that goes by extension");
    let uri = tgcn::retrieve::html::thumbnail(&png_as_jpg).expect("a PNG named .jpg shows");
    assert!(uri.starts_with("data:image/png;base64,"));
    std::fs::write(dir.join("notes.jpg"), b"not an image").unwrap();
    assert!(tgcn::retrieve::html::thumbnail(&dir.join("notes.jpg")).is_none());
}

/// A run copied elsewhere reads its relative data paths from the folder it was trained
/// in, with the checkpoints' config hash unchanged; a run whose cache is gone rebuilds
/// into `RUN/cache`, never into the working directory.
#[test]
fn runs_resolve_relative_paths_from_where_they_were_trained() {
    let dir = temp_dir("safety_relative");
    let trained_in = dir.join("project");
    std::fs::create_dir_all(trained_in.join("data/pascal")).unwrap();
    let run_dir = dir.join("run");
    let run = tgcn::run::RunDir::create_at(&run_dir).unwrap();
    let cfg = crate::common::dataset_cfg("pascal", &["data.pascal.root=data/pascal"]);
    std::fs::write(run.join("config.yaml"), cfg.to_yaml().unwrap()).unwrap();
    std::fs::write(
        run.join("env.json"),
        serde_json::json!({"working_dir": trained_in, "cache_dir": dir.join("gone")}).to_string(),
    )
    .unwrap();
    let loaded = run.config().unwrap();
    assert_eq!(loaded.data.root().unwrap(), trained_in.join("data/pascal"));
    assert_eq!(run.config_hash().unwrap(), cfg.hash().unwrap(), "the saved config's hash");
    assert_eq!(run.cache_dir(), run_dir.join("cache"));
    // A path that exists from here is kept as written.
    std::fs::write(run.join("env.json"), serde_json::json!({"working_dir": trained_in, "cache_dir": dir}).to_string())
        .unwrap();
    assert_eq!(run.cache_dir(), dir);
}

/// Ctrl-C (SIGINT) during training stops at the next batch with exit 130 and the resume
/// command; the resumed run ends where an uninterrupted one does. SIGTERM does the same
/// with 143, and a second Ctrl-C exits at once.
#[test]
fn signals_stop_at_a_safe_point_and_say_how_to_resume() {
    let root = temp_dir("safety_signals");
    let r = root.to_str().unwrap();
    let args = [
        "train",
        "--config",
        "configs/debug/tiny.yaml",
        "--set",
        "train.epochs=40",
        "--set",
        "train.pairs_per_epoch=4000",
        "--set",
        "export.enabled=false",
        "--runs",
        r,
    ];
    // Waits for `epoch 2` on stderr (a checkpoint exists), then sends `sig`.
    let interrupt = |sig: i32| -> (Output, PathBuf) {
        let mut child = tgcn().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut all = String::new();
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("epoch 2/") || line.contains("epoch   2") {
                    let _ = tx.send(());
                }
                all += &line;
                all.push('\n');
            }
            all
        });
        rx.recv_timeout(Duration::from_secs(120)).expect("training reached epoch 2");
        unsafe { libc::kill(child.id() as i32, sig) };
        let t0 = Instant::now();
        let status = child.wait().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(60), "stopped promptly");
        let err = reader.join().unwrap();
        let run = std::fs::read_dir(root.join("synthetic")).unwrap().map(|e| e.unwrap().path()).max().unwrap();
        (Output { status, stdout: Vec::new(), stderr: err.into_bytes() }, run)
    };
    let (o, run) = interrupt(libc::SIGINT);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(130), "{t}");
    assert!(
        t.contains("stopped by Ctrl-C (SIGINT)") && t.contains(&format!("tgcn train --resume {}", run.display())),
        "{t}"
    );
    assert!(t.contains("the last good checkpoint is"), "{t}");
    assert!(!run.join("train.lock").exists(), "the run's lock is released");
    let epoch =
        tgcn::run::checkpoint::read_meta(&tgcn::run::RunDir::open(&run).unwrap(), "last").unwrap().unwrap().epoch;
    assert!(epoch >= 1);

    let (o, _) = interrupt(libc::SIGTERM);
    assert_eq!(o.status.code(), Some(143), "{}", text(&o));
    assert!(text(&o).contains("stopped by SIGTERM"), "{}", text(&o));

    // A second Ctrl-C while the first waits for a safe point (here during preparation,
    // which has none: word vectors over a larger corpus) ends the process at once.
    let mut child = tgcn()
        .args(["train", "--config", "configs/debug/tiny.yaml", "--runs", r])
        .args(["--set", "data.synthetic.train=4000", "--set", "vectors.source=skipgram"])
        .args(["--set", "vectors.skipgram.epochs=600"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("stopping at the next safe point") {
                let _ = tx.send(());
            }
            all += &line;
            all.push('\n');
        }
        all
    });
    // Past process start-up (the handler is installed first thing in main), well inside
    // the ~20 s of word vectors.
    std::thread::sleep(Duration::from_secs(3));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    rx.recv_timeout(Duration::from_secs(30)).expect("the first Ctrl-C is acknowledged");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    let err = reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(!err.contains("stopped by"), "the second Ctrl-C did not wait for a safe point: {err}");
}

/// A run killed before its first epoch was saved: `--resume` says there is nothing to
/// resume and gives the command that starts it again.
#[test]
fn resuming_a_run_that_never_saved_an_epoch_says_what_to_do() {
    let run = tiny_run("safety_never_saved", &["export.enabled=false"]);
    for f in ["summary.json", "checkpoints/last.json", "checkpoints/last.safetensors", "checkpoints/best.json"] {
        let _ = std::fs::remove_file(run.join(f));
    }
    let o = tgcn().args(["train", "--resume", run.to_str().unwrap()]).output().unwrap();
    let t = text(&o);
    assert!(
        !o.status.success()
            && t.contains("stopped before its first epoch was saved")
            && t.contains("start it again with `"),
        "{t}"
    );
    let o = tgcn().args(["eval", "--run", run.to_str().unwrap()]).output().unwrap();
    assert!(text(&o).contains("stopped before its first epoch was saved"), "{}", text(&o));
}

/// Runs `cmd` and kills it (SIGKILL) after `after`, unless it ends first; its output and
/// whether it was killed.
fn run_until(mut cmd: Command, after: Duration) -> (Output, bool) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let t0 = Instant::now();
    let mut killed = false;
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() >= after {
            let _ = child.kill();
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), killed)
}

/// A failure on a full disk must be an error that says what was not written: never a
/// crash, a panic or a lost checkpoint.
fn assert_clear_failure(o: &Output, what: &str) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(1), "{what}: not a clean error exit:\n{t}");
    assert!(!t.contains("panicked") && !t.contains("terminate called"), "{what}:\n{t}");
    assert!(
        t.contains("disk") || t.contains("No space left") || t.contains("was not saved"),
        "{what}: the error does not name the full disk:\n{t}"
    );
}

/// Kills at random points of `train` (with its refit) and of `sweep`, on a tmpfs that is
/// sometimes nearly full when a command starts (seeded). After every kill or failure, the
/// next command continues (`--resume`, or the same sweep command); a checkpoint written
/// before is never lost, a failure names the full disk, and the end result is exactly an
/// uninterrupted run's.
#[test]
fn random_kills_on_a_filling_disk_never_lose_a_checkpoint() {
    use rand::{Rng, SeedableRng};
    let dir = temp_dir("safety_random_kills");
    let cfg = dir.join("small.yaml");
    std::fs::write(
        &cfg,
        "device: cpu\ndata:\n  synthetic: {train: 160, val: 40, test: 60, words_per_class: 20, shared_words: 40}\n\
         model: {embed_dim: 16}\ntrain: {epochs: 5, pairs_per_epoch: 4000, batch_size: 60, refit: true}\n\
         export: {enabled: false}\n",
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let train_args = |runs: &Path| -> Vec<String> {
        ["train", "--config", c, "--runs", runs.to_str().unwrap()].map(String::from).to_vec()
    };
    let sweep_args = |out: &Path| -> Vec<String> {
        ["sweep", "--config", c, "--grid", "train.lr=1e-3,3e-3", "--seeds", "1", "--out", out.to_str().unwrap()]
            .map(String::from)
            .to_vec()
    };
    let run_of = |runs: &Path| -> Option<PathBuf> {
        std::fs::read_dir(runs.join("synthetic")).ok()?.filter_map(|e| Some(e.ok()?.path())).max()
    };
    let cmd = |args: &[String]| {
        let mut c = tgcn();
        c.args(args);
        c
    };
    // The uninterrupted references.
    let t0 = Instant::now();
    let (o, _) = run_until(cmd(&train_args(&dir.join("ref"))), Duration::from_secs(300));
    eprintln!("reference run: {:.1} s", t0.elapsed().as_secs_f64());
    assert!(o.status.success(), "{}", text(&o));
    let want_train = std::fs::read_to_string(run_of(&dir.join("ref")).unwrap().join("summary.json")).unwrap();
    let want_train: serde_json::Value = serde_json::from_str(&want_train).unwrap();
    let (o, _) = run_until(cmd(&sweep_args(&dir.join("ref-sweep"))), Duration::from_secs(300));
    assert!(o.status.success(), "{}", text(&o));
    let results = |out: &Path| -> Vec<Vec<String>> {
        let mut r = csv::Reader::from_path(out.join("results.csv")).unwrap();
        let wall = r.headers().unwrap().iter().position(|h| h == "wall_seconds").unwrap();
        r.records()
            .map(|rec| {
                rec.unwrap().iter().enumerate().filter(|(i, _)| *i != wall).map(|(_, v)| v.to_string()).collect()
            })
            .collect()
    };
    let want_sweep = results(&dir.join("ref-sweep"));

    let Some(fs) = Tmpfs::mount("safety_random_kills_tmpfs", "16m") else { return };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    let (runs, sweep_out) = (fs.0.join("runs"), fs.0.join("sweep"));
    let (mut train_done, mut sweep_done, mut kills, mut full) = (false, false, 0, 0);
    for round in 0..80 {
        // Killed after its summary was written, a run is finished.
        train_done |= run_of(&runs).is_some_and(|r| r.join("summary.json").is_file());
        if train_done && sweep_done {
            break;
        }
        let sweeping = train_done || (!sweep_done && rng.gen_bool(0.4));
        let fill = rng.gen_bool(0.4);
        if fill {
            fs.fill(rng.gen_range(0..200) << 10);
        }
        let (args, had) = if sweeping {
            (sweep_args(&sweep_out), None)
        } else {
            match run_of(&runs) {
                Some(run) if tgcn::run::checkpoint::checkpoint_exists(&run, "last") => {
                    let meta =
                        |r: &Path| tgcn::run::checkpoint::read_meta(&tgcn::run::RunDir::open(r).unwrap(), "last");
                    let epoch = meta(&run).unwrap().expect("a saved checkpoint loads").epoch;
                    (["train", "--resume", run.to_str().unwrap()].map(String::from).to_vec(), Some((run, epoch)))
                }
                Some(run) => {
                    // Killed before its first checkpoint: start again, as the message says.
                    std::fs::remove_dir_all(&run).unwrap();
                    (train_args(&runs), None)
                }
                None => (train_args(&runs), None),
            }
        };
        let after = Duration::from_millis(rng.gen_range(200..2500));
        let (o, killed) = run_until(cmd(&args), after);
        fs.empty();
        if let Some((run, epoch)) = had {
            let m = tgcn::run::checkpoint::read_meta(&tgcn::run::RunDir::open(&run).unwrap(), "last").unwrap();
            assert!(m.is_some_and(|m| m.epoch >= epoch), "round {round}: checkpoint `last` of epoch {epoch} was lost");
        }
        match (killed, o.status.success()) {
            (true, _) => kills += 1,
            // A trial that failed on the full disk is retried by the same command.
            (false, true) if sweeping => {
                let trials = std::fs::read_to_string(sweep_out.join("trials.csv")).unwrap();
                sweep_done = !trials.contains(",failed,");
                if !sweep_done {
                    full += 1;
                    assert!(fill && (trials.contains("disk") || trials.contains("No space")), "{trials}");
                }
            }
            (false, true) => train_done = true,
            (false, false) => {
                full += 1;
                assert!(fill, "round {round}: failed with room on the disk:\n{}", text(&o));
                assert_clear_failure(&o, &format!("round {round} ({})", args.join(" ")));
            }
        }
    }
    assert!(train_done && sweep_done, "did not finish in 80 rounds ({kills} kills, {full} full-disk failures)");
    eprintln!("{kills} kills and {full} full-disk failures on the way");
    let got: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_of(&runs).unwrap().join("summary.json")).unwrap()).unwrap();
    assert_eq!(got["test"], want_train["test"], "the interrupted run's test figures");
    assert_eq!(got["best_epoch"], want_train["best_epoch"]);
    assert_eq!(results(&sweep_out), want_sweep, "the interrupted sweep's table");
}
