//! `tgcn`: train, evaluate and export text-as-graph cross-modal retrieval models.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use tgcn::config::{dataset_config_path, Config, DeviceChoice, Layer};
use tgcn::image::featurize::{self, FeaturizeConfig, FeaturizeOptions, OnBadImage};

#[derive(Parser)]
#[command(name = "tgcn", version, about = "Text-as-graph cross-modal retrieval (Yu et al. 2018) on libtorch")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train on a dataset from `configs/<dataset>.yaml`, then evaluate and export.
    Train(TrainArgs),
    /// A hyper-parameter search that selects on validation only (no trial reads the test split).
    ///
    /// Every setting of the grid (or --random N of them) trains once per seed, in
    /// OUT/runs/<dataset>/<name>-seed<S>/. OUT/trials.csv has one row per trial,
    /// OUT/results.csv and OUT/results.md one per setting (mean ± std over seeds, best
    /// first), OUT/best.yaml the best setting as a --config overlay. Rerunning the same
    /// command skips finished trials, resumes interrupted ones and retries failed ones.
    ///
    /// Example: tgcn sweep --dataset synthetic --grid train.lr=1e-3,3e-3
    /// --grid 'model.image.hidden=[],[512]' --seeds 1,2,3 --out runs/sweeps/lr
    Sweep(SweepArgs),
    /// Re-evaluate a finished run from the checkpoint it was tested with (best, or the refit).
    Eval(EvalArgs),
    /// Re-export a finished run's tested checkpoint (best, or the refit) to TorchScript.
    Export(ExportArgs),
    /// Print versions and the devices libtorch sees.
    Info,
    /// Validate and prepare a dataset: counts per split and class, vocabulary, graph, OOV.
    Data(DataArgs),
    /// A markdown table of finished runs, mean ± std over seeds, grouped by run name;
    /// with --html, a self-contained RUN/report.html per run (curves, retrieval examples).
    Report(ReportArgs),
    /// Query a trained run with free text, an image file or a dataset item.
    Search(SearchArgs),
    /// Write a run's text and image embeddings as .npy (+ ids, labels, manifest) for a vector index.
    Embed(EmbedArgs),
    /// Benchmark kNN search, the Chebyshev layer, a training step and ranking.
    Bench(BenchArgs),
    /// One side of `make bench-compare` (scripts/bench_compare.py): time one workload of
    /// this config on CPU and print a JSON line; `--case workload` writes the shared inputs.
    BenchSide(BenchSideArgs),
    /// Turn raw images into a features file (`--out x.npy` + `x.ids.txt`) with a TorchScript backbone.
    Featurize(FeaturizeCmdArgs),
    /// Images/s on one folder of images: decoding alone, the model alone, and the pipeline.
    BenchFeaturize(BenchFeaturizeArgs),
}

#[derive(clap::Args)]
struct TrainArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Root folder of the runs.
    #[arg(long, default_value = "runs")]
    runs: PathBuf,
    /// Print the resolved config and exit.
    #[arg(long)]
    dry_run: bool,
    /// Continue an interrupted run folder from its last checkpoint (no other config flags).
    #[arg(long, conflicts_with_all = ["extra", "sets", "dry_run"])]
    resume: Option<PathBuf>,
    /// Stop cleanly after this epoch; continue later with --resume.
    #[arg(long)]
    stop_after_epoch: Option<usize>,
    /// With `train.refit: true`: stop cleanly after this epoch of the refit on
    /// train ∪ validation; continue later with --resume.
    #[arg(long)]
    stop_after_refit_epoch: Option<usize>,
    /// Train and select on validation with the test split withheld: no test
    /// evaluation, curves or export (what each `tgcn sweep` trial does).
    #[arg(long, conflicts_with = "resume")]
    validation_only: bool,
}

#[derive(clap::Args)]
struct SweepArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// KEY=V1,V2,... (repeatable, one per key): values are YAML like --set values,
    /// separated by the commas outside brackets, braces and quotes, so a list keeps its
    /// commas: --grid 'model.image.hidden=[],[512],[1024, 512]'.
    #[arg(long = "grid", required = true, value_name = "KEY=V1,V2,...")]
    grid: Vec<String>,
    /// Draw N distinct settings of the grid (seeded by --sweep-seed) instead of all.
    #[arg(long, value_name = "N")]
    random: Option<usize>,
    #[arg(long, default_value_t = 0)]
    sweep_seed: u64,
    /// Seeds each setting trains with, e.g. 1,2,3.
    #[arg(long, required = true)]
    seeds: String,
    /// The sweep folder (created; rerun with the same folder to continue).
    #[arg(long)]
    out: PathBuf,
    /// Also write the best setting's overlay here.
    #[arg(long)]
    best_out: Option<PathBuf>,
    /// Test hook: pause trial T after its epoch E and stop, as if killed.
    #[arg(long, hide = true, value_name = "T:E")]
    stop_after: Option<String>,
}

#[derive(clap::Args)]
struct EvalArgs {
    #[arg(long)]
    run: PathBuf,
}

#[derive(clap::Args)]
struct ExportArgs {
    #[arg(long)]
    run: PathBuf,
}

#[derive(clap::Args)]
struct DataArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The dataset's root folder (overrides the config's `root`).
    #[arg(long)]
    source: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ReportArgs {
    /// Run folders (e.g. runs/eng-wiki/*).
    runs: Vec<PathBuf>,
    /// Write RUN/report.html for each run instead of the table.
    #[arg(long)]
    html: bool,
}

#[derive(clap::Args)]
struct SearchArgs {
    #[arg(long)]
    run: PathBuf,
    /// Free text, tokenized as the run's training texts were.
    #[arg(long, required_unless_present_any = ["image", "item"], conflicts_with_all = ["image", "item"])]
    text: Option<String>,
    /// An image file, featurized with the run's backbone (needs `data.from_images`).
    #[arg(long, conflicts_with = "item")]
    image: Option<PathBuf>,
    /// A dataset item, SPLIT:ID (e.g. test:42); its text is the query unless --side image.
    #[arg(long)]
    item: Option<String>,
    /// With --item: query with the item's text (finds images) or its image (finds texts).
    #[arg(long, default_value = "text", value_parser = ["text", "image"])]
    side: String,
    /// The splits searched: test, train or all.
    #[arg(long, default_value = "test")]
    against: String,
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct EmbedArgs {
    #[arg(long)]
    run: PathBuf,
    /// train, val, test or all.
    #[arg(long, default_value = "all")]
    split: String,
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Smaller sizes, for a smoke run.
    #[arg(long)]
    quick: bool,
    /// Run only these cases: knn, cheb, step, rank (comma-separated; default all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Queries of the ranking case (then warmed up on one chunk and timed once).
    #[arg(long)]
    rank_queries: Option<usize>,
    /// Database size of the ranking case.
    #[arg(long)]
    rank_db: Option<usize>,
    /// Queries scored at once in the ranking case (`eval.chunk`).
    #[arg(long, default_value_t = 256)]
    rank_chunk: usize,
}

#[derive(clap::Args)]
struct BenchSideArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// workload, step, skipgram, knn or rank.
    #[arg(long)]
    case: String,
    /// Folder of the shared inputs (written by `--case workload`).
    #[arg(long)]
    workload: PathBuf,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long, default_value_t = 10)]
    repeats: usize,
    /// libtorch intra-op threads (the PyTorch side uses the same).
    #[arg(long, default_value_t = 2)]
    threads: i32,
    #[arg(long, default_value = "runs/cache")]
    cache: PathBuf,
}

#[derive(clap::Args)]
struct FeaturizeCmdArgs {
    #[command(flatten)]
    args: FeaturizeArgs,
    #[arg(long)]
    out: PathBuf,
    /// Stop after this many batches, leaving a resumable `<out>.partial/`.
    #[arg(long)]
    max_batches: Option<usize>,
}

#[derive(clap::Args)]
struct BenchFeaturizeArgs {
    #[command(flatten)]
    args: FeaturizeArgs,
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    batch_sizes: Vec<usize>,
    /// Feed the image list this many times (more batches from a small folder).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
}

/// Inputs and settings shared by `featurize` and `bench-featurize`; flags override `--config`.
#[derive(clap::Args)]
struct FeaturizeArgs {
    /// A folder of images (searched recursively; the id is the path relative to it).
    #[arg(long, required_unless_present = "list", conflicts_with = "list")]
    images: Option<PathBuf>,
    /// A file listing image paths, one a line, relative to the list's folder.
    #[arg(long)]
    list: Option<PathBuf>,
    /// YAML with any `FeaturizeConfig` keys (backbone, resize, crop, mean, std, ...).
    #[arg(long)]
    config: Option<PathBuf>,
    /// TorchScript module `[N, 3, crop, crop] -> [N, D]` (default models/efficientnet_lite0.pt).
    #[arg(long)]
    backbone: Option<PathBuf>,
    #[arg(long)]
    resize: Option<u32>,
    #[arg(long)]
    crop: Option<u32>,
    #[arg(long)]
    batch_size: Option<usize>,
    /// Decoding threads (0: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Leave unreadable images out (listed) instead of stopping.
    #[arg(long)]
    skip_bad: bool,
    /// auto | cpu | cuda
    #[arg(long, default_value = "auto")]
    device: String,
}

impl FeaturizeArgs {
    fn resolve(&self) -> Result<(featurize::ImageList, FeaturizeConfig, tch::Device)> {
        let mut cfg = match &self.config {
            Some(p) => FeaturizeConfig::from_yaml_file(p)?,
            None => FeaturizeConfig::default(),
        };
        cfg.backbone = self.backbone.clone().unwrap_or(cfg.backbone);
        cfg.resize = self.resize.unwrap_or(cfg.resize);
        cfg.crop = self.crop.unwrap_or(cfg.crop);
        cfg.batch_size = self.batch_size.unwrap_or(cfg.batch_size);
        cfg.threads = self.threads.unwrap_or(cfg.threads);
        if self.skip_bad {
            cfg.on_bad_image = OnBadImage::Skip;
        }
        let choice = match self.device.as_str() {
            "auto" => DeviceChoice::Auto,
            "cpu" => DeviceChoice::Cpu,
            "cuda" => DeviceChoice::Cuda,
            other => anyhow::bail!("--device must be auto, cpu or cuda, got {other:?}"),
        };
        let images = match (&self.images, &self.list) {
            (Some(dir), _) => {
                let listing = featurize::scan_images(dir)?;
                if let Some(note) = listing.note(dir) {
                    eprintln!("{note}");
                }
                listing.images
            }
            (None, Some(list)) => featurize::read_image_list(list)?,
            (None, None) => anyhow::bail!("give --images DIR or --list FILE"),
        };
        Ok((images, cfg, tgcn::prepare::resolve_device(choice)?))
    }
}

/// The layered config: `configs/<dataset>.yaml`, each `--config`, each `--set`.
#[derive(clap::Args)]
struct ConfigArgs {
    #[arg(long, default_value = "synthetic")]
    dataset: String,
    /// Folder of the per-dataset configs.
    #[arg(long, default_value = "configs")]
    configs: PathBuf,
    /// Extra YAML layered over the dataset config (repeatable, in order).
    #[arg(long = "config")]
    extra: Vec<PathBuf>,
    /// Override one key, e.g. `--set train.lr=1e-4` (repeatable, applied last).
    #[arg(long = "set")]
    sets: Vec<String>,
}

impl ConfigArgs {
    /// The dataset config and each `--config`, without the `--set`s.
    fn file_layers(&self) -> Result<Vec<Layer>> {
        let mut layers = vec![Layer::from_file(&dataset_config_path(&self.configs, &self.dataset)?)?];
        for p in &self.extra {
            layers.push(Layer::from_file(p)?);
        }
        Ok(layers)
    }

    fn resolve(&self) -> Result<Config> {
        let mut layers = self.file_layers()?;
        for s in &self.sets {
            layers.push(Layer::from_set(s)?);
        }
        Config::from_layers(&layers)
    }
}

fn run() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Train(a) => train_cmd(a),
        Cmd::Sweep(a) => sweep_cmd(a),
        Cmd::Data(a) => data_cmd(a),
        Cmd::Report(a) => report_cmd(a),
        Cmd::Search(a) => search_cmd(a),
        Cmd::Embed(a) => embed_cmd(a),
        Cmd::Eval(a) => eval_cmd(a),
        Cmd::Export(a) => export_cmd(a),
        Cmd::Bench(a) => bench_cmd(a),
        Cmd::BenchSide(a) => bench_side_cmd(a),
        Cmd::Info => info_cmd(),
        Cmd::Featurize(a) => featurize_cmd(a),
        Cmd::BenchFeaturize(a) => bench_featurize_cmd(a),
    }
}

/// `tgcn train`.
fn train_cmd(a: TrainArgs) -> Result<()> {
    let TrainArgs { config, runs, dry_run, resume, stop_after_epoch, stop_after_refit_epoch, validation_only } = a;
    let opts =
        tgcn::train::TrainOptions { stop_after_epoch, stop_after_refit_epoch, validation_only, ..Default::default() };
    if let Some(run) = resume {
        tgcn::train::resume(&run, &opts)?;
        return Ok(());
    }
    let cfg = config.resolve()?;
    if dry_run {
        print!("{}", cfg.to_yaml()?);
        return Ok(());
    }
    tgcn::train::train(&cfg, &runs, &opts)?;
    Ok(())
}

/// `tgcn sweep`.
fn sweep_cmd(a: SweepArgs) -> Result<()> {
    let SweepArgs { config, grid, random, sweep_seed, seeds, out, best_out, stop_after } = a;
    use tgcn::train::sweep;
    let stop_after = match stop_after {
        None => None,
        Some(s) => {
            let parsed = s.split_once(':').and_then(|(t, e)| Some((t.parse().ok()?, e.parse().ok()?)));
            Some(parsed.ok_or_else(|| anyhow::anyhow!("--stop-after {s:?}: expected TRIAL:EPOCH"))?)
        }
    };
    let spec = sweep::SweepSpec {
        base: config.file_layers()?,
        sets: config.sets.clone(),
        grid: grid.iter().map(|g| sweep::parse_grid(g)).collect::<Result<_>>()?,
        random,
        sweep_seed,
        seeds: sweep::parse_seeds(&seeds)?,
        out: out.clone(),
        best_out,
        command: std::iter::once("tgcn".to_string())
            .chain(std::env::args().skip(1).map(|a| tgcn::run::shell_word(&a)))
            .collect::<Vec<_>>()
            .join(" "),
        stop_after,
    };
    let o = sweep::run(&spec)?;
    let failed = o.rows.iter().filter(|r| r.status == sweep::Status::Failed).count();
    if !o.stopped {
        if let Some((best, (score, _))) = o.results.first().and_then(|r| Some((r, r.val_mean?))) {
            println!(
                "best: {} ({}), val mean MAP@all {score:.4}{}; overlay {}",
                o.plan.settings[best.setting].name,
                o.plan.label(best.setting),
                if failed > 0 { format!("; {failed} trial(s) failed") } else { String::new() },
                out.join("best.yaml").display()
            );
        }
        println!(
            "wrote {}, {} and {}",
            out.join("trials.csv").display(),
            out.join("results.csv").display(),
            out.join("results.md").display()
        );
    }
    Ok(())
}

/// `tgcn data`.
fn data_cmd(a: DataArgs) -> Result<()> {
    let DataArgs { config, source } = a;
    let mut cfg = config.resolve()?;
    if let Some(src) = source {
        tgcn::prepare::set_dataset_root(&mut cfg, src)?;
    }
    let device = tgcn::prepare::resolve_device(cfg.device)?;
    let data = tgcn::prepare::prepare(&cfg, device, Some(Path::new("runs/cache")))?;
    println!("{}", data.summary());
    Ok(())
}

/// `tgcn report`.
fn report_cmd(a: ReportArgs) -> Result<()> {
    let ReportArgs { runs, html } = a;
    if html {
        anyhow::ensure!(!runs.is_empty(), "--html needs at least one run folder");
        for r in &runs {
            println!("wrote {}", tgcn::retrieve::html::write_report(r)?.display());
        }
    } else {
        print!("{}", tgcn::run::report::report(&runs)?);
    }
    Ok(())
}

/// `tgcn search`.
fn search_cmd(a: SearchArgs) -> Result<()> {
    let SearchArgs { run, text, image, item, side, against, top, json } = a;
    use tgcn::retrieve::search::{format_result, search, Query, Side};
    let against = tgcn::retrieve::Against::parse(&against)?;
    let side = if side == "image" { Side::Image } else { Side::Text };
    let q = match (text, image, item) {
        (Some(t), _, _) => Query::Text(t),
        (_, Some(p), _) => Query::Image(p),
        (_, _, Some(i)) => Query::item(&i, side)?,
        _ => anyhow::bail!("give one of --text, --image or --item"),
    };
    let t = tgcn::retrieve::Trained::load(&run)?;
    let r = search(&t, &q, against, top)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", format_result(&r));
    }
    Ok(())
}

/// `tgcn embed`.
fn embed_cmd(a: EmbedArgs) -> Result<()> {
    let EmbedArgs { run, split, out } = a;
    let splits = tgcn::retrieve::embed::parse_splits(&split)?;
    tgcn::retrieve::embed::check_out(&out)?;
    let t = tgcn::retrieve::Trained::load(&run)?;
    let m = tgcn::retrieve::embed::write_embeddings(&t, &splits, &out)?;
    let what = match m.ranking {
        "class_posterior" | "classifier" => {
            format!("{}-d class posteriors, ranked by their inner product", m.dim)
        }
        _ => format!("{}-d, {} scorer, bias {:.6}", m.dim, m.scorer, m.bias),
    };
    println!("wrote {} text and image embeddings ({what}) to {}", m.count, out.display());
    Ok(())
}

/// `tgcn eval`.
fn eval_cmd(a: EvalArgs) -> Result<()> {
    let EvalArgs { run } = a;
    tgcn::train::eval_run(&run)?;
    Ok(())
}

/// `tgcn export`.
fn export_cmd(a: ExportArgs) -> Result<()> {
    let ExportArgs { run } = a;
    tgcn::train::export_existing(&run)?;
    Ok(())
}

/// `tgcn bench`.
fn bench_cmd(a: BenchArgs) -> Result<()> {
    let BenchArgs { device, quick, only, rank_queries, rank_db, rank_chunk } = a;
    let choice: tgcn::config::DeviceChoice = serde_yaml::from_str(&device)
        .map_err(|_| anyhow::anyhow!("--device must be auto, cpu or cuda, got {device:?}"))?;
    let only = only.iter().map(|c| tgcn::bench::Case::parse(c)).collect::<Result<Vec<_>>>()?;
    let opts = tgcn::bench::BenchOptions { quick, only, rank_queries, rank_db, rank_chunk };
    print!("{}", tgcn::bench::run_with(tgcn::prepare::resolve_device(choice)?, &opts)?);
    Ok(())
}

/// `tgcn bench-side`.
fn bench_side_cmd(a: BenchSideArgs) -> Result<()> {
    let BenchSideArgs { config, case, workload, warmup, repeats, threads, cache } = a;
    tch::set_num_threads(threads);
    let cfg = config.resolve()?;
    println!("{}", tgcn::bench::side::run(&cfg, &case, &workload, &cache, warmup, repeats)?);
    Ok(())
}

/// `tgcn info`.
fn info_cmd() -> Result<()> {
    println!("tgcn {}", env!("CARGO_PKG_VERSION"));
    println!("libtorch {}", env!("TGCN_LIBTORCH_VERSION"));
    println!("cuda available: {}", tch::Cuda::is_available());
    println!("cuda devices: {}", tch::Cuda::device_count());
    println!("cudnn available: {}", tch::Cuda::cudnn_is_available());
    println!("threads: {}", tch::get_num_threads());
    Ok(())
}

/// `tgcn featurize`.
fn featurize_cmd(a: FeaturizeCmdArgs) -> Result<()> {
    let FeaturizeCmdArgs { args, out, max_batches } = a;
    let (images, cfg, device) = args.resolve()?;
    let opts = FeaturizeOptions { progress: true, max_batches };
    let r = featurize::featurize_with(&images, &out, &cfg, device, &opts)?;
    for b in &r.skipped {
        eprintln!("skipped {}: {}", b.path.display(), b.reason);
    }
    if !r.complete {
        println!(
            "stopped after {} batches; rerun to continue from {}",
            r.batches,
            featurize::partial_dir(&out).display()
        );
    } else if r.from_cache {
        println!("{} is up to date ({} x {}, {} skipped)", out.display(), r.rows, r.dim, r.skipped.len());
    } else {
        println!(
            "wrote {} ({} x {}; {} skipped; {} computed, {} shards reused) in {:.1} s on {device:?}",
            out.display(),
            r.rows,
            r.dim,
            r.skipped.len(),
            r.computed,
            r.reused_shards,
            r.wall_seconds
        );
    }
    Ok(())
}

/// `tgcn bench-featurize`.
fn bench_featurize_cmd(a: BenchFeaturizeArgs) -> Result<()> {
    let BenchFeaturizeArgs { args, batch_sizes, repeat } = a;
    let (once, cfg, device) = args.resolve()?;
    let images: featurize::ImageList =
        (0..repeat).flat_map(|k| once.iter().map(move |(id, p)| (format!("{id}#{k}"), p.clone()))).collect();
    let scratch = std::env::temp_dir().join(format!("tgcn-bench-featurize-{}", std::process::id()));
    let result = featurize::benchmark(&images, &cfg, device, &batch_sizes, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    let (dec, rows) = result?;
    println!(
        "{} images, {device:?}, {} torch threads; backbone {}",
        images.len(),
        tch::get_num_threads(),
        cfg.backbone.display()
    );
    print!("{}", featurize::bench_table(&dec, &rows));
    Ok(())
}

/// The error chain on one line, without libtorch's C++ backtrace (`Exception raised
/// from …` and its `frame #N` lines), which says nothing to a user.
fn one_line(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    let kept: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("frame #") || t.starts_with("Exception raised from") || t.is_empty())
        })
        .collect();
    kept.join(" ")
}

fn main() {
    // Printing into a closed pipe (`tgcn eval --run R | head -2`) ends the process quietly,
    // as the default SIGPIPE does for other Unix tools, instead of a panic in println!.
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    tgcn::stop::install();
    if let Err(e) = run() {
        if let Some(i) = tgcn::stop::interrupted(&e) {
            eprintln!("{i}");
            std::process::exit(i.exit_code());
        }
        eprintln!("error: {}", one_line(&e));
        std::process::exit(1);
    }
}
