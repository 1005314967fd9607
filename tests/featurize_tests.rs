//! Image preprocessing against hand-computed values, decoding of every supported colour
//! type, bad-file reporting, the Rust-vs-Python check with a tiny TorchScript CNN,
//! resuming and caching; and (`#[ignore]`, `make test-slow`) EfficientNet-Lite0 on the
//! real Pascal Sentences photographs.

use crate::common::{project_root, run_python, shared_data, temp_dir, venv_python};
use image::{ImageBuffer, Luma, Rgb, RgbImage, Rgba};
use std::path::{Path, PathBuf};
use tch::Device;
use tgcn::data::features::{parse_npy, read_features};
use tgcn::image::featurize::{
    featurize_with, list_images, partial_dir, sidecar_path, BadImagesError, FeaturizeConfig, FeaturizeOptions,
    FeaturizeReport, OnBadImage,
};
use tgcn::image::prep::{self as imageprep, crop_origin, decode_rgb, resized_size, Preprocess};

/// Preprocessing that only scales to 0..1, so outputs read as pixel values / 255.
fn plain(resize: u32, crop: u32) -> Preprocess {
    Preprocess { resize, crop, mean: [0.0; 3], std: [1.0; 3] }
}

fn assert_close32(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}[{i}]: got {g}, want {w} (tol {tol})");
    }
}

#[test]
fn resize_rule_and_crop_origin() {
    assert_eq!(resized_size(500, 375, 256), (341, 256)); // 500·256/375 = 341.33 → 341
    assert_eq!(resized_size(375, 500, 256), (256, 341));
    assert_eq!(resized_size(100, 100, 256), (256, 256));
    assert_eq!(resized_size(1, 3, 2), (2, 6));
    assert_eq!(crop_origin(341, 256, 224), (16, 58)); // ⌊32/2⌋, ⌊117/2⌋
    assert_eq!(crop_origin(256, 341, 224), (58, 16));
    assert_eq!(crop_origin(5, 5, 2), (1, 1));
}

#[test]
fn upsampling_is_bilinear_between_pixel_centres() {
    // 2×2 → shorter side 4 (4×4), centre crop 2 = output pixels 1..3 on each axis.
    // Output centre j maps to input (j + ½)/2, so pixels 1 and 2 take (¾, ¼) and (¼, ¾)
    // of input pixels 0 and 1.
    let r = [[0.0f32, 100.0], [200.0, 40.0]]; // [y][x]
    let mut img = RgbImage::new(2, 2);
    for y in 0..2 {
        for x in 0..2 {
            img.put_pixel(x, y, Rgb([r[y as usize][x as usize] as u8, 255 - r[y as usize][x as usize] as u8, 128]));
        }
    }
    let out = plain(4, 2).rgb(&img);
    // Rows first: row 0 → [25, 75], row 1 → [160, 80]; then columns:
    // y=1: ¾·row0 + ¼·row1 = [58.75, 76.25]; y=2: ¼·row0 + ¾·row1 = [126.25, 78.75].
    let red = [58.75f32, 76.25, 126.25, 78.75];
    let want: Vec<f32> = red
        .iter()
        .map(|v| v / 255.0)
        .chain(red.iter().map(|v| (255.0 - v) / 255.0))
        .chain([128.0 / 255.0; 4])
        .collect();
    assert_close32(&out, &want, 1e-6, "upsampled CHW");
}

#[test]
fn downsampling_averages_under_a_widened_triangle_then_normalises() {
    // 4×2 → shorter side 1: 2×1, centre crop 1 = output pixel (0, 0), centre (1, 1) in
    // input coordinates with the triangle widened to radius 2 on both axes:
    // rows 0, 1 weigh ¾, ¾ (→ ½, ½); columns 0, 1, 2 weigh ¾, ¾, ¼ (→ 3/7, 3/7, 1/7).
    let mut img = RgbImage::new(4, 2);
    for x in 0..4u32 {
        img.put_pixel(x, 0, Rgb([10 + 10 * x as u8, 0, 255]));
        img.put_pixel(x, 1, Rgb([50 + 10 * x as u8, 255, 255]));
    }
    let p = Preprocess { resize: 1, crop: 1, mean: imageprep::IMAGENET_MEAN, std: imageprep::IMAGENET_STD };
    let out = p.rgb(&img);
    // Red: column means 30, 40, 50 → (3·30 + 3·40 + 50)/7 = 260/7. Green: ½·0 + ½·255. Blue: 255.
    let px = [260.0f32 / 7.0, 127.5, 255.0];
    let want: Vec<f32> = (0..3).map(|c| (px[c] / 255.0 - p.mean[c]) / p.std[c]).collect();
    assert_close32(&out, &want, 1e-5, "downsampled, ImageNet-normalised");
}

#[test]
fn crop_offsets_and_channel_planes_at_unit_scale() {
    // 6×3 with resize 3 keeps the size; crop 3 starts at column ⌊(6−3)/2⌋ = 1.
    let mut img = RgbImage::new(6, 3);
    for y in 0..3u32 {
        for x in 0..6u32 {
            img.put_pixel(x, y, Rgb([(10 * x + y) as u8, (100 + x) as u8, (200 + y) as u8]));
        }
    }
    let out = plain(3, 3).rgb(&img);
    for c in 0..3 {
        for y in 0..3u32 {
            for x in 0..3u32 {
                let want = img.get_pixel(x + 1, y)[c] as f32 / 255.0;
                let got = out[c * 9 + y as usize * 3 + x as usize];
                assert!((got - want).abs() < 1e-6, "channel {c} ({x}, {y}): {got} vs {want}");
            }
        }
    }
}

#[test]
fn resize_agrees_with_the_image_crate_triangle_filter() {
    // Same filter as `image::imageops::FilterType::Triangle`, which rounds to 8 bits at the end.
    let mut img = RgbImage::new(37, 23);
    let mut s = 12345u32;
    for p in img.pixels_mut() {
        for c in 0..3 {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            p[c] = (s >> 24) as u8;
        }
    }
    let (rw, rh) = resized_size(37, 23, 16);
    let theirs = image::imageops::resize(&img, rw, rh, image::imageops::FilterType::Triangle);
    let (top, left) = crop_origin(rw, rh, 16);
    let ours = plain(16, 16).rgb(&img);
    for c in 0..3 {
        for y in 0..16u32 {
            for x in 0..16u32 {
                let t = theirs.get_pixel(x + left, y + top)[c] as f32;
                let o = ours[c * 256 + y as usize * 16 + x as usize] * 255.0;
                assert!((t - o).abs() <= 0.5 + 1e-3, "channel {c} ({x}, {y}): ours {o}, image crate {t}");
            }
        }
    }
}

fn png_bytes<P: image::PixelWithColorType>(img: &ImageBuffer<P, Vec<P::Subpixel>>) -> Vec<u8>
where
    [P::Subpixel]: image::EncodableLayout,
{
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png).unwrap();
    buf.into_inner()
}

fn jpeg_bytes(img: &RgbImage) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Jpeg).unwrap();
    buf.into_inner()
}

/// A smooth but not flat test picture.
fn picture(w: u32, h: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 7 + seed * 31) as u8, (y * 5 + seed * 17) as u8, ((x + y) * 3 + seed * 11) as u8])
    })
}

#[test]
fn decodes_grayscale_alpha_cmyk_and_gif_to_rgb() {
    let gray = ImageBuffer::from_fn(3, 2, |x, y| Luma([(40 * x + 100 * y) as u8]));
    let rgb = decode_rgb(&png_bytes(&gray)).unwrap();
    assert_eq!(rgb.get_pixel(2, 1), &Rgb([180, 180, 180]), "gray is replicated");

    let rgba = ImageBuffer::from_fn(2, 2, |x, _| Rgba([10 * x as u8, 20, 30, 0]));
    assert_eq!(decode_rgb(&png_bytes(&rgba)).unwrap().get_pixel(1, 0), &Rgb([10, 20, 30]), "alpha is dropped");

    let gray16: ImageBuffer<Luma<u16>, Vec<u16>> =
        ImageBuffer::from_fn(2, 1, |x, _| Luma([if x == 0 { 0 } else { 65535 }]));
    let g = decode_rgb(&png_bytes(&gray16)).unwrap();
    assert_eq!((g.get_pixel(0, 0), g.get_pixel(1, 0)), (&Rgb([0, 0, 0]), &Rgb([255, 255, 255])), "16-bit is scaled");

    // GIF: a palette image, decoded exactly.
    let pal = RgbImage::from_fn(4, 4, |x, y| if (x + y) % 2 == 0 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) });
    let mut gif = std::io::Cursor::new(Vec::new());
    pal.write_to(&mut gif, image::ImageFormat::Gif).unwrap();
    let gif = gif.into_inner();
    assert_eq!(imageprep::sniff(&gif), Some(image::ImageFormat::Gif));
    let back = decode_rgb(&gif).unwrap();
    assert_eq!((back.get_pixel(0, 0), back.get_pixel(1, 0)), (&Rgb([255, 0, 0]), &Rgb([0, 0, 255])));

    // CMYK JPEG (Adobe-style, as Photoshop writes it): R = 255·(1−C)(1−K), and so on.
    let cases: [([u8; 4], [u8; 3]); 3] =
        [([0, 255, 255, 0], [255, 0, 0]), ([255, 0, 0, 0], [0, 255, 255]), ([0, 0, 0, 128], [127, 127, 127])];
    for (cmyk, want) in cases {
        let data: Vec<u8> = (0..16 * 16).flat_map(|_| cmyk).collect();
        let mut jpg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpg, 95).encode(&data, 16, 16, jpeg_encoder::ColorType::Cmyk).unwrap();
        let got = decode_rgb(&jpg).unwrap();
        let p = got.get_pixel(8, 8);
        for c in 0..3 {
            assert!((p[c] as i32 - want[c] as i32).abs() <= 4, "CMYK {cmyk:?} → {p:?}, want about {want:?}");
        }
    }
}

#[test]
fn truncated_empty_and_non_image_bytes_are_errors() {
    let jpg = jpeg_bytes(&picture(64, 48, 1));
    assert!(decode_rgb(&jpg).is_ok());
    imageprep::check_jpeg_complete(&jpg).unwrap();
    for cut in [jpg.len() - 2, jpg.len() * 3 / 4, jpg.len() / 2, 40, 3] {
        let e = format!("{:#}", decode_rgb(&jpg[..cut]).unwrap_err());
        assert!(e.contains("truncated JPEG"), "cut at {cut}: {e}");
    }
    let png = png_bytes(&picture(64, 48, 2));
    for cut in [png.len() / 2, 30] {
        assert!(decode_rgb(&png[..cut]).is_err(), "PNG cut at {cut} must not decode");
    }
    assert!(format!("{:#}", decode_rgb(b"").unwrap_err()).contains("empty file"));
    let e = format!("{:#}", decode_rgb(b"hello, I am text\n").unwrap_err());
    assert!(e.contains("not a JPEG, PNG, GIF, BMP, WebP or TIFF") && e.contains("68 65 6c 6c"), "{e}");
}

/// A folder of small images in several formats and sizes; returns it.
fn write_images(dir: &Path, n: usize) -> PathBuf {
    let d = dir.join("images");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    for i in 0..n {
        let (w, h) = (20 + 7 * i as u32 % 31, 18 + 5 * i as u32 % 23);
        let img = picture(w, h, i as u32);
        match i % 4 {
            0 => std::fs::write(d.join(format!("im{i:02}.png")), png_bytes(&img)).unwrap(),
            1 => std::fs::write(d.join(format!("im{i:02}.JPG")), jpeg_bytes(&img)).unwrap(),
            2 => img.save_with_format(d.join(format!("sub/im{i:02}.gif")), image::ImageFormat::Gif).unwrap(),
            _ => {
                let gray = image::DynamicImage::ImageRgb8(img).to_luma8();
                std::fs::write(d.join(format!("im{i:02}.png")), png_bytes(&gray)).unwrap();
            }
        }
    }
    std::fs::write(d.join("notes.txt"), "not an image, and not listed").unwrap();
    d
}

/// The tiny TorchScript CNN of `scripts/make_tiny_cnn.py`, made once per test binary
/// (starting Python with torch costs seconds); None, with a message, without the venv.
fn tiny_cnn() -> Option<PathBuf> {
    static MODEL: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    MODEL
        .get_or_init(|| {
            let py = venv_python()?;
            let model = temp_dir("featurize_tiny_cnn").join("tiny_cnn.pt");
            run_python(&py, &project_root().join("scripts/make_tiny_cnn.py"), &["make", model.to_str().unwrap()]);
            Some(model)
        })
        .clone()
}

fn tiny_cfg(backbone: &Path) -> FeaturizeConfig {
    FeaturizeConfig {
        backbone: backbone.to_path_buf(),
        resize: 20,
        crop: 16,
        batch_size: 3,
        threads: 2,
        ..Default::default()
    }
}

fn quiet() -> FeaturizeOptions {
    FeaturizeOptions { progress: false, max_batches: None }
}

fn run(images: &[(String, PathBuf)], out: &Path, cfg: &FeaturizeConfig) -> FeaturizeReport {
    featurize_with(images, out, cfg, Device::Cpu, &quiet()).unwrap()
}

#[test]
fn tiny_cnn_features_match_python_on_the_same_tensors() {
    let dir = temp_dir("featurize_tiny_python");
    let Some(model) = tiny_cnn() else { return };
    let images = list_images(&write_images(&dir, 7)).unwrap();
    let ids: Vec<&str> = images.iter().map(|(id, _)| id.as_str()).collect();
    // Sorted by the path relative to the folder; notes.txt is not an image name.
    assert_eq!(ids, ["im00.png", "im01.JPG", "im03.png", "im04.png", "im05.JPG", "sub/im02.gif", "sub/im06.gif"]);
    let cfg = tiny_cfg(&model);
    let out = dir.join("feats.npy");
    let r = run(&images, &out, &cfg);
    assert!(r.complete && !r.from_cache);
    assert_eq!((r.rows, r.dim, r.computed, r.batches), (7, 6, 7, 3));
    let f = read_features(&out).unwrap();
    assert_eq!(f.ids, ids);

    // Python runs torch.jit.load on exactly the tensors Rust preprocessed.
    let prep = cfg.preprocess();
    let inputs: Vec<f32> = images.iter().flat_map(|(_, p)| prep.file(p).unwrap()).collect();
    let inp = dir.join("inputs.npy");
    std::fs::write(&inp, tgcn::data::features::npy_bytes(&inputs, images.len(), prep.len())).unwrap();
    let py_out = dir.join("python.npy");
    let script = project_root().join("scripts/make_tiny_cnn.py");
    let py = venv_python().unwrap();
    let args = ["forward", model.to_str().unwrap(), inp.to_str().unwrap(), "16", py_out.to_str().unwrap()];
    run_python(&py, &script, &args);
    let (want, rows, cols) = parse_npy(&std::fs::read(&py_out).unwrap(), "python.npy").unwrap();
    assert_eq!((rows, cols), (7, 6));
    assert_close32(&f.data, &want, 1e-5, "Rust vs Python features");

    // A rerun is a cache hit; the sidecar records the run.
    assert!(sidecar_path(&out).is_file() && !partial_dir(&out).exists());
    let again = run(&images, &out, &cfg);
    assert!(again.from_cache && again.computed == 0 && again.rows == 7);
    // Another batch size recomputes (the cache key ignores it) only when inputs change:
    std::fs::write(&images[0].1, png_bytes(&picture(25, 25, 99))).unwrap();
    let changed = run(&images, &out, &FeaturizeConfig { batch_size: 1, ..cfg.clone() });
    assert!(!changed.from_cache && changed.computed == 7);
    let g = read_features(&out).unwrap();
    assert_ne!(g.data[..6], f.data[..6], "the replaced image gives new features");
    assert_close32(&g.data[6..], &f.data[6..], 1e-6, "other images, batch size 1 vs 3");
}

#[test]
fn bad_files_are_reported_by_path_and_never_reach_the_model() {
    let dir = temp_dir("featurize_bad_files");
    let Some(model) = tiny_cnn() else { return };
    let imgs = write_images(&dir, 4);
    let jpg = jpeg_bytes(&picture(64, 48, 5));
    std::fs::write(imgs.join("truncated.jpg"), &jpg[..jpg.len() / 2]).unwrap();
    std::fs::write(imgs.join("empty.jpg"), b"").unwrap();
    std::fs::write(imgs.join("text.jpg"), b"this is a text file\n").unwrap();
    let all = list_images(&imgs).unwrap();
    assert_eq!(all.len(), 7);
    let cfg = tiny_cfg(&model);
    let out = dir.join("feats.npy");
    let opts = quiet();

    // Stop mode: the pre-check names the empty and the text file, before any decoding.
    let err = featurize_with(&all, &out, &cfg, Device::Cpu, &opts).unwrap_err();
    let bad = err.downcast_ref::<BadImagesError>().expect("a BadImagesError");
    let paths: Vec<&Path> = bad.images.iter().map(|b| b.path.as_path()).collect();
    assert_eq!(paths, [imgs.join("empty.jpg"), imgs.join("text.jpg")]);
    let msg = format!("{err:#}");
    assert!(msg.contains("empty.jpg: empty file") && msg.contains("text.jpg: not a JPEG"), "{msg}");
    assert!(!out.exists());

    // Stop mode, only the truncated file is bad: found by the decoder check.
    let some: Vec<_> = all.iter().filter(|(id, _)| id != "empty.jpg" && id != "text.jpg").cloned().collect();
    let err = featurize_with(&some, &out, &cfg, Device::Cpu, &opts).unwrap_err();
    let bad = &err.downcast_ref::<BadImagesError>().expect("a BadImagesError").images;
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].path, imgs.join("truncated.jpg"));
    assert!(bad[0].reason.contains("truncated JPEG"), "{}", bad[0].reason);
    assert!(!out.exists());

    // Skip mode: good rows only, each bad file listed with its reason.
    let cfg = FeaturizeConfig { on_bad_image: OnBadImage::Skip, ..cfg };
    let r = featurize_with(&all, &out, &cfg, Device::Cpu, &opts).unwrap();
    assert_eq!(r.rows, 4);
    let skipped: Vec<(&str, &str)> = r.skipped.iter().map(|b| (b.id.as_str(), b.reason.as_str())).collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(skipped[0].0 == "empty.jpg" && skipped[0].1.contains("empty file"));
    assert!(skipped[1].0 == "text.jpg" && skipped[1].1.contains("not a JPEG"));
    assert!(skipped[2].0 == "truncated.jpg" && skipped[2].1.contains("truncated JPEG"));
    assert_eq!(read_features(&out).unwrap().ids, ["im00.png", "im01.JPG", "im03.png", "sub/im02.gif"]);

    // A missing file is reported, not a crash.
    let missing = vec![("gone.png".to_string(), imgs.join("gone.png"))];
    let err = featurize_with(&missing, &dir.join("m.npy"), &tiny_cfg(&model), Device::Cpu, &opts).unwrap_err();
    assert!(format!("{err:#}").contains("gone.png: cannot open"), "{err:#}");
}

#[test]
fn an_interrupted_run_resumes_to_the_same_result() {
    let dir = temp_dir("featurize_resume");
    let Some(model) = tiny_cnn() else { return };
    let images = list_images(&write_images(&dir, 10)).unwrap();
    let cfg = FeaturizeConfig { batch_size: 2, shard_size: 3, ..tiny_cfg(&model) };

    let whole = dir.join("whole.npy");
    run(&images, &whole, &cfg);
    let want = read_features(&whole).unwrap();

    // Shards of 3 items make batches [2, 1] each; stopping after 3 batches leaves shard 0
    // written and shard 1 half done.
    let out = dir.join("resumed.npy");
    let stop = FeaturizeOptions { progress: false, max_batches: Some(3) };
    let r = featurize_with(&images, &out, &cfg, Device::Cpu, &stop).unwrap();
    assert!(!r.complete && !out.exists());
    let partial = partial_dir(&out);
    assert!(partial.join("shard-00000.json").is_file() && !partial.join("shard-00001.json").exists());

    let r = run(&images, &out, &cfg);
    assert!(r.complete && r.reused_shards == 1 && r.computed == 7, "{r:?}");
    assert_eq!(read_features(&out).unwrap(), want, "resumed output is identical");
    assert!(!partial.exists(), "the partial folder is removed at the end");

    // A damaged shard is recomputed, not trusted; stale shards of other settings are dropped.
    let r = featurize_with(&images, &out.with_file_name("r2.npy"), &cfg, Device::Cpu, &stop).unwrap();
    assert!(!r.complete);
    let p2 = partial_dir(&out.with_file_name("r2.npy"));
    std::fs::write(p2.join("shard-00000.npy"), b"\x93NUMPY garbage").unwrap();
    let r = run(&images, &out.with_file_name("r2.npy"), &cfg);
    assert_eq!((r.reused_shards, r.computed), (0, 10));
    assert_eq!(read_features(&out.with_file_name("r2.npy")).unwrap(), want);

    let r = featurize_with(&images, &out.with_file_name("r3.npy"), &cfg, Device::Cpu, &stop).unwrap();
    assert!(!r.complete);
    let other = FeaturizeConfig { resize: 18, ..cfg.clone() };
    let r = run(&images, &out.with_file_name("r3.npy"), &other);
    assert_eq!(r.reused_shards, 0, "shards made with another resize are not reused");
}

/// Two featurizers of one output at once (two trainings on one image folder with an
/// empty cache): the second waits for the first's lock, then finds the features done.
/// Without the lock they shared `<out>.partial/` and one failed on the other's files.
#[test]
fn concurrent_featurizers_of_one_output_both_succeed() {
    let dir = temp_dir("featurize_concurrent");
    let Some(model) = tiny_cnn() else { return };
    let images = list_images(&write_images(&dir, 12)).unwrap();
    let cfg = FeaturizeConfig { batch_size: 2, shard_size: 3, ..tiny_cfg(&model) };
    let want = {
        let whole = dir.join("alone.npy");
        run(&images, &whole, &cfg);
        read_features(&whole).unwrap()
    };
    let out = dir.join("shared.npy");
    let reports: Vec<FeaturizeReport> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2).map(|_| s.spawn(|| run(&images, &out, &cfg))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(reports.iter().filter(|r| r.from_cache).count(), 1, "one computes, one finds it done");
    assert_eq!(read_features(&out).unwrap(), want);
    assert!(!partial_dir(&out).exists());
}

#[test]
fn config_defaults_yaml_and_validation() {
    let d = FeaturizeConfig::default();
    assert_eq!((d.resize, d.crop, d.batch_size, d.on_bad_image), (256, 224, 32, OnBadImage::Stop));
    assert_eq!(d.backbone, PathBuf::from("models/efficientnet_lite0.pt"));
    let dir = temp_dir("featurize_config");
    let p = dir.join("f.yaml");
    std::fs::write(&p, "backbone: x.pt\nbatch_size: 8\non_bad_image: skip\n").unwrap();
    let c = FeaturizeConfig::from_yaml_file(&p).unwrap();
    assert_eq!(
        c,
        FeaturizeConfig { backbone: "x.pt".into(), batch_size: 8, on_bad_image: OnBadImage::Skip, ..d.clone() }
    );
    std::fs::write(&p, "backbone: x.pt\nresise: 8\n").unwrap();
    let e = format!("{:#}", FeaturizeConfig::from_yaml_file(&p).unwrap_err());
    assert!(e.contains("f.yaml") && e.contains("resise"), "{e}");
    std::fs::write(&p, "on_bad_image: ignore\n").unwrap();
    let e = format!("{:#}", FeaturizeConfig::from_yaml_file(&p).unwrap_err());
    assert!(e.contains("on_bad_image"), "{e}");
    let e = format!("{:#}", FeaturizeConfig { crop: 300, ..d.clone() }.validate().unwrap_err());
    assert!(e.contains("crop (300) must not exceed resize (256)"), "{e}");
    assert!(FeaturizeConfig { std: [0.2, 0.0, 0.2], ..d.clone() }.validate().is_err());

    // Inputs are checked before any work: duplicate ids, a bad output name, a missing backbone.
    let imgs = vec![("a".to_string(), dir.join("a.png")), ("a".to_string(), dir.join("b.png"))];
    let e = format!("{:#}", featurize_with(&imgs, &dir.join("o.npy"), &d, Device::Cpu, &quiet()).unwrap_err());
    assert!(e.contains("appears twice"), "{e}");
    let one = &imgs[..1];
    let e = format!("{:#}", featurize_with(one, &dir.join("o.bin"), &d, Device::Cpu, &quiet()).unwrap_err());
    assert!(e.contains("must end in .npy"), "{e}");
    let c = FeaturizeConfig { backbone: dir.join("none.pt"), ..d };
    let e = format!("{:#}", featurize_with(one, &dir.join("o.npy"), &c, Device::Cpu, &quiet()).unwrap_err());
    assert!(e.contains("none.pt does not exist") && e.contains("make backbone"), "{e}");
}

/// EfficientNet-Lite0 (`make backbone`) over the real Pascal Sentences JPEGs, two of which
/// are empty files.
#[test]
#[ignore = "real data + EfficientNet-Lite0, about a minute on 2 cores: make test-slow"]
fn efficientnet_lite0_on_real_pascal_photographs() {
    let Some(dir) = shared_data("pascal-sentences/images") else { return };
    let backbone = project_root().join("models/efficientnet_lite0.pt");
    if !backbone.is_file() {
        eprintln!("SKIP: {} is absent (run `make backbone`)", backbone.display());
        return;
    }
    let images = list_images(&dir).unwrap();
    assert_eq!(images.len(), 49);
    let empty = [dir.join("2008_001971.jpg"), dir.join("2008_008501.jpg")];
    let tmp = temp_dir("featurize_pascal");
    let cfg = FeaturizeConfig { backbone, batch_size: 16, shard_size: 10, ..Default::default() };

    let err = featurize_with(&images, &tmp.join("stop.npy"), &cfg, Device::Cpu, &quiet()).unwrap_err();
    let bad = &err.downcast_ref::<BadImagesError>().expect("a BadImagesError").images;
    assert_eq!(bad.iter().map(|b| b.path.clone()).collect::<Vec<_>>(), empty, "{err:#}");

    let cfg = FeaturizeConfig { on_bad_image: OnBadImage::Skip, ..cfg };
    let a = run(&images, &tmp.join("b16.npy"), &cfg);
    assert_eq!(a.skipped.iter().map(|b| b.path.clone()).collect::<Vec<_>>(), empty);
    assert!(a.skipped.iter().all(|b| b.reason.contains("empty file")));
    let f16 = read_features(&tmp.join("b16.npy")).unwrap();
    assert_eq!((f16.ids.len(), f16.dim), (47, 1280));
    assert!(f16.data.iter().all(|v| v.is_finite()));
    assert!(f16.data.iter().any(|&v| v > 0.1), "features are not all zero");

    let cfg5 = FeaturizeConfig { batch_size: 5, ..cfg.clone() };
    run(&images, &tmp.join("b5.npy"), &cfg5);
    let f5 = read_features(&tmp.join("b5.npy")).unwrap();
    assert_eq!(f5.ids, f16.ids);
    let diff = f5.data.iter().zip(&f16.data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    eprintln!("batch 5 vs 16: max |difference| {diff:e}");
    assert!(diff <= 1e-4, "batch size changed the features by {diff}");

    // Interrupt after 3 batches of 5 (shard 0 of 10 items is written), then resume.
    let out = tmp.join("resumed.npy");
    let stop = FeaturizeOptions { progress: false, max_batches: Some(3) };
    let r = featurize_with(&images, &out, &cfg5, Device::Cpu, &stop).unwrap();
    assert!(!r.complete && !out.exists());
    let r = run(&images, &out, &cfg5);
    assert!(r.complete && r.reused_shards == 1, "{r:?}");
    assert_eq!(read_features(&out).unwrap(), f5, "resumed run differs from an uninterrupted one");
}

/// `tgcn search --image` featurizes its file exactly as `featurize` did the training
/// images: same backbone, preprocessing and output row.
#[test]
fn search_image_query_features_equal_the_featurizer_row() {
    let dir = temp_dir("featurize_search_image");
    let Some(model) = tiny_cnn() else { return };
    let images = list_images(&write_images(&dir, 4)).unwrap();
    let cfg = tiny_cfg(&model);
    let out = dir.join("feats.npy");
    run(&images, &out, &cfg);
    let f = read_features(&out).unwrap();
    let fi = tgcn::config::FromImages { images: dir.clone(), featurize: cfg.clone() };
    for (r, (_, path)) in images.iter().enumerate() {
        let q = tgcn::retrieve::search::image_file_features(&fi, path, Device::Cpu).unwrap();
        assert_eq!(q.size(), [1, f.dim as i64]);
        let q: Vec<f32> = Vec::try_from(q.flatten(0, -1)).unwrap();
        assert_close32(&q, &f.data[r * f.dim..(r + 1) * f.dim], 1e-5, "search image vs featurizer row");
    }
    let missing = tgcn::config::FromImages {
        images: dir.clone(),
        featurize: FeaturizeConfig { backbone: dir.join("none.pt"), ..cfg },
    };
    let e =
        format!("{:#}", tgcn::retrieve::search::image_file_features(&missing, &images[0].1, Device::Cpu).unwrap_err());
    assert!(e.contains("none.pt") && e.contains("does not exist"), "{e}");
}

#[test]
fn bmp_webp_and_tiff_decode_by_content_whatever_the_name() {
    let img = picture(9, 7, 3);
    for format in [image::ImageFormat::Bmp, image::ImageFormat::WebP, image::ImageFormat::Tiff] {
        let mut buf = std::io::Cursor::new(Vec::new());
        img.write_to(&mut buf, format).unwrap();
        let bytes = buf.into_inner();
        assert_eq!(imageprep::sniff(&bytes), Some(format));
        assert_eq!(imageprep::reject_header(&bytes[..16], bytes.len() as u64), None, "{format:?} passes the pre-check");
        // All three are written losslessly here.
        assert_eq!(decode_rgb(&bytes).unwrap(), img, "{format:?}");
    }
    // A BMP named `.jpg` goes through the file path (pre-check and decoder) unharmed.
    let dir = temp_dir("featurize_bmp_as_jpg");
    let path = dir.join("photo.jpg");
    img.save_with_format(&path, image::ImageFormat::Bmp).unwrap();
    assert!(std::fs::read(&path).unwrap().starts_with(b"BM"));
    let listed = list_images(&dir).unwrap();
    assert_eq!(listed, [("photo.jpg".to_string(), path.clone())]);
    assert_eq!(plain(9, 7).file(&path).unwrap(), plain(9, 7).rgb(&img));
}

/// An Eng-Wiki-style image tree: `images/<class>/<image id>.<ext>` plus files that are not
/// images, for list entries i1..i6 (classes art, biology, art, history, biology, history).
fn image_tree(dir: &Path) -> PathBuf {
    let d = dir.join("images");
    for c in ["art", "biology", "history", "docs"] {
        std::fs::create_dir_all(d.join(c)).unwrap();
    }
    let png = |p: &str, seed| std::fs::write(d.join(p), png_bytes(&picture(20, 18, seed))).unwrap();
    png("art/i1.png", 1);
    // i2: a BMP named .jpg.
    picture(22, 19, 2).save_with_format(d.join("biology/i2.jpg"), image::ImageFormat::Bmp).unwrap();
    std::fs::write(d.join("art/i3 .jpg"), jpeg_bytes(&picture(21, 20, 3))).unwrap();
    png("history/i4.png", 4);
    png("biology/i5.png", 5);
    png("history/i6.png", 6);
    // The same id under a class the lists do not give it: never read (it is not even an image).
    std::fs::write(d.join("history/i1.jpg"), "not an image").unwrap();
    std::fs::write(d.join("docs/readme.txt"), "about the images").unwrap();
    std::fs::write(d.join("LICENSE.txt"), "CC BY-SA").unwrap();
    std::fs::write(d.join("art/logo.svg"), "<svg/>").unwrap();
    d
}

fn image_tree_config(dir: &Path, images: &Path, backbone: &Path) -> tgcn::config::Config {
    use tgcn::config::{Config, Layer};
    let root = dir.join("engwiki");
    let train = [("t1", "i1", 1), ("t2", "i2", 2), ("t3", "i3", 1), ("t4", "i4", 3)];
    let test = [("s5", "i5", 2), ("s6", "i6", 3)];
    std::fs::create_dir_all(root.join("text_seqs")).unwrap();
    let list = |p: &[(&str, &str, usize)]| p.iter().map(|(t, i, c)| format!("{t}\t{i}\t{c}\r\n")).collect::<String>();
    std::fs::write(root.join("trainset_txt_img_cat.list"), list(&train)).unwrap();
    std::fs::write(root.join("testset_txt_img_cat.list"), list(&test)).unwrap();
    std::fs::write(root.join("categories.list"), "art\nbiology\nhistory\n").unwrap();
    for (t, _, c) in train.iter().chain(&test) {
        std::fs::write(root.join(format!("text_seqs/{t}.xml")), format!("army words {t}\t{}\n", c - 1)).unwrap();
    }
    let layers = [
        Layer::from_file(&project_root().join("configs/eng-wiki.yaml")).unwrap(),
        Layer::from_set(&format!("data.listed.root={}", root.display())).unwrap(),
        Layer::from_set("data.listed.val_fraction=0.5").unwrap(),
        Layer::from_set(&format!(
            "data.from_images={{images: {}, featurize: {{backbone: {}, resize: 20, crop: 16, threads: 2}}}}",
            images.display(),
            backbone.display()
        ))
        .unwrap(),
        Layer::from_set("device=cpu").unwrap(),
    ];
    Config::from_layers(&layers).unwrap()
}

#[test]
fn image_folder_ids_resolve_by_list_class_trimmed_stems_and_counted_non_images() {
    use tgcn::prepare::{image_categories, image_stem, resolve_image_ids};
    let dir = temp_dir("featurize_image_tree_ids");
    let images = image_tree(&dir);
    let cfg = image_tree_config(&dir, &images, &dir.join("unused.pt"));
    assert_eq!(image_stem("art/i3 .jpg"), "i3");
    assert_eq!(image_stem(" x y .png"), "x y");

    // Non-images are counted by extension, one line.
    let listing = tgcn::image::featurize::scan_images(&images).unwrap();
    assert_eq!(listing.not_images, [(".txt".to_string(), 2), (".svg".to_string(), 1)]);
    assert_eq!(
        listing.note(&images).unwrap(),
        format!(
            "featurize: 3 files under {} are not images by extension (.txt ×2, .svg ×1); they are not read",
            images.display()
        )
    );
    let ids: Vec<&str> = listing.images.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "art/i1.png",
            "art/i3 .jpg",
            "biology/i2.jpg",
            "biology/i5.png",
            "history/i1.jpg",
            "history/i4.png",
            "history/i6.png"
        ]
    );

    // i1 is in art and history; the lists say art.
    let classes = image_categories(&cfg).unwrap().expect("the list layout has classes");
    assert_eq!(classes["i1"].iter().collect::<Vec<_>>(), ["art"]);
    let (kept, left_out) = resolve_image_ids(listing.images.clone(), &images, Some(&classes)).unwrap();
    assert_eq!(left_out, ["history/i1.jpg"]);
    assert_eq!(kept.len(), 6);
    assert!(kept.iter().any(|(id, _)| id == "art/i1.png"));

    // Unresolvable: no class information, both in the listed class, or an id no list names.
    let e = format!("{:#}", resolve_image_ids(listing.images.clone(), &images, None).unwrap_err());
    assert!(
        e.contains("art/i1.png and history/i1.jpg") && e.contains("share the id i1") && e.contains("no class"),
        "{e}"
    );
    let mut same = listing.images.clone();
    same.push(("art/i1.gif".into(), images.join("art/i1.gif")));
    same.sort();
    let e = format!("{:#}", resolve_image_ids(same, &images, Some(&classes)).unwrap_err());
    assert!(e.contains("share the id i1") && e.contains("class art; 2 of these files"), "{e}");
    let mut unlisted = listing.images.clone();
    unlisted.push(("art/i9.png".into(), images.join("art/i9.png")));
    unlisted.push(("history/i9.png".into(), images.join("history/i9.png")));
    let e = format!("{:#}", resolve_image_ids(unlisted, &images, Some(&classes)).unwrap_err());
    assert!(e.contains("share the id i9") && e.contains("do not name image i9"), "{e}");
}

#[test]
fn eng_wiki_from_a_real_world_image_tree() {
    // Two files with id i1 (resolved by the list's class), a BMP named .jpg, `i3 .jpg`,
    // and files that are not images: every list pair gets its image's features.
    let dir = temp_dir("featurize_image_tree_engwiki");
    let Some(model) = tiny_cnn() else { return };
    let images = image_tree(&dir);
    let cfg = image_tree_config(&dir, &images, &model);
    let ds = tgcn::prepare::load_dataset(&cfg, Some(&dir.join("cache")), Device::Cpu).unwrap();
    assert_eq!((ds.items.len(), ds.image_dim), (6, 6));
    // Each item's row is the features of its own file (art/i1.png for i1).
    let files = ["art/i1.png", "biology/i2.jpg", "art/i3 .jpg", "history/i4.png", "biology/i5.png", "history/i6.png"];
    let list: Vec<(String, PathBuf)> = files.iter().map(|f| (f.to_string(), images.join(f))).collect();
    let out = dir.join("direct.npy");
    run(&list, &out, &FeaturizeConfig { threads: 2, ..tiny_cfg(&model) });
    let direct = read_features(&out).unwrap();
    for (i, it) in ds.items.iter().enumerate() {
        let k: usize = it.id[1..].parse().unwrap();
        assert_close32(ds.image(i), &direct.data[(k - 1) * 6..k * 6], 1e-5, &it.id);
    }
}
