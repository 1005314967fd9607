//! Raw images as a dataset's image source (`data.from_images`): which files a dataset
//! uses, and their features from the TorchScript backbone, cached by their inputs.

use crate::config::{Config, DatasetBlock};
use crate::image::featurize::ImageList;
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use tch::Device;

/// `data.from_images` with its folder resolved: as given, or `<dataset root>/images` when
/// omitted (so that it follows `--source` and the root like every other dataset path).
pub fn from_images(cfg: &Config) -> Result<Option<crate::config::FromImages>> {
    let Some(fi) = &cfg.data.from_images else { return Ok(None) };
    let mut fi = fi.clone();
    if fi.images.as_os_str().is_empty() {
        let root =
            cfg.data.root().context("`data.from_images.images` is omitted but the dataset has no root folder")?;
        fi.images = root.join("images");
    }
    Ok(Some(fi))
}

pub use crate::data::features::image_stem;

/// Image id → class names, from the dataset lists where the layout has them (Eng-Wiki,
/// TVGraz, Ch-Wiki); None for the other layouts.
pub fn image_categories(cfg: &Config) -> Result<Option<HashMap<String, BTreeSet<String>>>> {
    match cfg.data.block()? {
        DatasetBlock::Listed(l) => Ok(Some(crate::data::listed::image_categories(l)?)),
        _ => Ok(None),
    }
}

/// Tells apart image files that share an id ([`image_stem`]): of such files, the one in a
/// folder named after a class the dataset lists give that id is kept and the others are
/// left out. Where that does not leave exactly one (no class information, an id the lists
/// do not name, none or several files in such a folder) it is an error. Returns the kept
/// files, in order, and the ids of those left out.
pub fn resolve_image_ids(
    images: ImageList,
    dir: &Path,
    categories: Option<&HashMap<String, BTreeSet<String>>>,
) -> Result<(ImageList, Vec<String>)> {
    let mut by_stem: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, (id, _)) in images.iter().enumerate() {
        by_stem.entry(image_stem(id)).or_default().push(i);
    }
    let folder = |i: usize| Path::new(&images[i].0).parent().and_then(|p| p.file_name()).map(|f| f.to_string_lossy());
    let mut keep = vec![true; images.len()];
    for (stem, files) in by_stem.iter().filter(|(_, f)| f.len() > 1) {
        let classes = categories.and_then(|c| c.get(stem));
        let in_class: Vec<usize> = files
            .iter()
            .copied()
            .filter(|&i| folder(i).is_some_and(|f| classes.is_some_and(|c| c.contains(&*f))))
            .collect();
        if let [winner] = in_class[..] {
            files.iter().for_each(|&i| keep[i] = i == winner);
            continue;
        }
        let why = match (categories, classes) {
            (None, _) => "the dataset has no class lists to tell them apart".to_string(),
            (Some(_), None) => format!("the dataset lists do not name image {stem}"),
            (Some(_), Some(c)) => format!(
                "the lists give it class {}; {} of these files are in a folder of that name",
                c.iter().cloned().collect::<Vec<_>>().join(" or "),
                in_class.len()
            ),
        };
        let names: Vec<&str> = files.iter().map(|&i| images[i].0.as_str()).collect();
        bail!("images {} under {} share the id {stem} ({why})", names.join(" and "), dir.display());
    }
    let mut kept = Vec::with_capacity(images.len());
    let mut left_out = Vec::new();
    for (item, k) in images.into_iter().zip(keep) {
        if k {
            kept.push(item);
        } else {
            left_out.push(item.0);
        }
    }
    Ok((kept, left_out))
}

/// The image files of `data.from_images` the dataset uses: every image under the folder
/// ([`crate::image::featurize::scan_images`]), less the files [`resolve_image_ids`] leaves
/// out. With `notes`, one line on stderr each for the files that are not images by
/// extension and for the files left out.
pub fn dataset_images(cfg: &Config, fi: &crate::config::FromImages, notes: bool) -> Result<ImageList> {
    let listing = crate::image::featurize::scan_images(&fi.images)?;
    if let Some(note) = listing.note(&fi.images).filter(|_| notes) {
        eprintln!("{note}");
    }
    let (kept, left_out) = resolve_image_ids(listing.images, &fi.images, image_categories(cfg)?.as_ref())?;
    if notes && !left_out.is_empty() {
        eprintln!(
            "featurize: {} file(s) under {} share an image id with a file in the class folder the dataset \
             lists give it, and are left out: {}",
            left_out.len(),
            fi.images.display(),
            left_out.join(", ")
        );
    }
    Ok(kept)
}

/// Runs the featurizer over `data.from_images` (resumable, cached by its inputs) and
/// returns a feature file keyed by [`image_stem`], the id the dataset lists use.
pub fn featurize_images(cfg: &Config, cache: &Path, device: Device) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let fi = cfg.data.from_images.as_ref().context("`data.from_images` is not set")?;
    let key: String = Sha256::digest(format!("{}\n{}", fi.images.display(), serde_yaml::to_string(&fi.featurize)?))
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::create_dir_all(cache).with_context(|| format!("cannot create cache folder {}", cache.display()))?;
    let out = cache.join(format!("images-{key}.npy"));
    let list = dataset_images(cfg, fi, true)?;
    crate::image::featurize::featurize(&list, &out, &fi.featurize, device)?;
    let f = crate::data::features::read_features(&out)?;
    let mut seen: HashMap<String, &str> = HashMap::new();
    let stems: Vec<String> = f
        .ids
        .iter()
        .map(|id| {
            let stem = image_stem(id);
            if let Some(other) = seen.insert(stem.clone(), id) {
                bail!("images {other} and {id} under {} share the id {stem}", fi.images.display());
            }
            Ok(stem)
        })
        .collect::<Result<_>>()?;
    let by_stem = cache.join(format!("images-{key}.by-stem.npy"));
    crate::data::features::write_features(
        &by_stem,
        &crate::data::features::Features { ids: stems, dim: f.dim, data: f.data },
    )?;
    Ok(by_stem)
}
