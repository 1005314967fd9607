//! The configured dataset, loaded through its block of `data` (the one place that tells
//! the layouts apart), plus the tokenizer its texts and free-text queries go through.

use crate::config::{Config, DatasetBlock, DatasetKind};
use crate::data::synthetic;
use crate::data::Dataset;
use anyhow::{ensure, Context, Result};
use std::path::{Path, PathBuf};
use tch::Device;

use super::images::{featurize_images, from_images};

pub fn tokenizer(cfg: &Config) -> crate::data::tokenize::Tokenizer {
    crate::data::tokenize::Tokenizer::new(cfg.text.language, cfg.text.stop_words, cfg.text.stem)
}

/// A free-text query cut into tokens exactly as the dataset's texts were: whitespace for
/// pre-tokenized texts (synthetic words, Eng-Wiki `text_seqs`, NUS-WIDE tags), the
/// configured tokenizer for raw texts (Pascal captions, raw articles).
pub fn tokenize_query(cfg: &Config, text: &str) -> Vec<String> {
    let mut tokens = if pre_tokenized(cfg) {
        text.split_whitespace().map(str::to_string).collect()
    } else {
        tokenizer(cfg).tokenize(text)
    };
    if cfg.text.lowercase {
        lowercase(&mut tokens);
    }
    if let Some(n) = cfg.text.max_tokens {
        tokens.truncate(n);
    }
    tokens
}

/// Whether the dataset's texts come as whitespace-separated tokens (synthetic, NUS-WIDE's
/// tags, Eng-Wiki's `text_seqs`) rather than raw text for the tokenizer.
pub fn pre_tokenized(cfg: &Config) -> bool {
    match cfg.data.block() {
        Ok(DatasetBlock::Synthetic(_) | DatasetBlock::NusWide(_)) => true,
        Ok(DatasetBlock::Listed(l)) => l.texts == crate::data::listed::TextSource::TextSeqs,
        Ok(DatasetBlock::Pascal(_) | DatasetBlock::Pairs(_)) | Err(_) => false,
    }
}

/// `text.lowercase`: every token in lower case.
fn lowercase(tokens: &mut [String]) {
    for t in tokens {
        if t.chars().any(char::is_uppercase) {
            *t = t.to_lowercase();
        }
    }
}

/// Where a dataset's files go, for the error when its root folder is missing.
pub fn expected_layout(kind: DatasetKind) -> &'static str {
    match kind {
        DatasetKind::Synthetic => "nothing: the synthetic dataset is generated",
        DatasetKind::EngWiki => {
            "Eng-Wiki (http://www.svcl.ucsd.edu/projects/crossmodal/): ROOT/trainset_txt_img_cat.list, \
             ROOT/testset_txt_img_cat.list, ROOT/categories.list, ROOT/raw_features.mat, and the texts as \
             ROOT/texts/<text_id>.xml (raw articles) or ROOT/text_seqs/<text_id>.xml (processed)"
        }
        DatasetKind::Tvgraz | DatasetKind::ChWiki => {
            "ROOT/trainset_txt_img_cat.list, ROOT/testset_txt_img_cat.list (text_id<TAB>image_id<TAB>category), \
             optional ROOT/categories.list, the texts at ROOT/<data.listed.text_file>, and image features \
             (data.listed.image_features) or raw images (data.from_images)"
        }
        DatasetKind::Pascal => {
            "ROOT/pascal_sentences.json (or ROOT/sentence/<class>/<image>.txt), and image features \
             (data.pascal.image_features, a .npy + .ids.txt) or raw images (data.from_images)"
        }
        DatasetKind::Pairs => {
            "ROOT/<data.pairs.file> (a .csv or .jsonl: id, image or a features row, text or text_file, optional \
             labels and split), the images under ROOT/images (data.from_images) or image features \
             (data.pairs.image_features)"
        }
        DatasetKind::NusWide => {
            "NUS-WIDE (https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/NUS-WIDE.html): \
             ROOT/NUS_WID_Tags/AllTags1k.txt, ROOT/NUS_WID_Tags/TagList1k.txt, ROOT/Concepts81.txt, \
             ROOT/Groundtruth/AllLabels/Labels_<concept>.txt, ROOT/ImageList/{Imagelist,TrainImagelist,TestImagelist}.txt, \
             ROOT/Low_Level_Features/BoW_int.dat"
        }
    }
}

/// Points the active dataset block at another root folder (`make data SOURCE=DIR`).
pub fn set_dataset_root(cfg: &mut Config, root: PathBuf) -> Result<()> {
    ensure!(!root.is_file(), "--source {} is a file; name the dataset's root folder", root.display());
    cfg.data.set_root(root)
}

/// Loads the configured dataset (features from raw images first, when configured).
pub fn load_dataset(cfg: &Config, cache: Option<&Path>, device: Device) -> Result<Dataset> {
    if let Some(root) = cfg.data.root() {
        ensure!(
            root.is_dir(),
            "dataset {} not found: {} does not exist. Put there {} (or set the root: \
             `make data DATASET={} SOURCE=DIR`)",
            cfg.data.dataset.name(),
            root.display(),
            expected_layout(cfg.data.dataset).replace("ROOT", &root.display().to_string()),
            cfg.data.dataset.name()
        );
    }
    if let Some(fi) = from_images(cfg)? {
        // The featurizer sees the resolved folder (`<root>/images` when omitted).
        let mut resolved = cfg.clone();
        resolved.data.from_images = Some(fi);
        let path = featurize_images(
            &resolved,
            cache.context("`data.from_images` needs a cache folder for the image features (prepare was given none)")?,
            device,
        )?;
        let mut c = cfg.clone();
        c.data.set_image_features(path)?;
        c.data.from_images = None;
        return load_dataset(&c, cache, device);
    }
    let mut ds = match cfg.data.block()? {
        DatasetBlock::Synthetic(s) => synthetic::generate(s, cfg.seed),
        DatasetBlock::Listed(l) => crate::data::listed::load(cfg.data.dataset.name(), l, &tokenizer(cfg), cfg.seed)?,
        DatasetBlock::Pascal(p) => crate::data::pascal::load(p, &tokenizer(cfg), cfg.seed)?,
        DatasetBlock::NusWide(n) => crate::data::nus_wide::load(n, cfg.seed)?,
        DatasetBlock::Pairs(p) => crate::data::pairs::load(p, &tokenizer(cfg), cfg.seed)?,
    };
    if cfg.text.lowercase {
        for item in &mut ds.items {
            lowercase(&mut item.tokens);
        }
    }
    ds.validate()?;
    Ok(ds)
}

/// Where a config's image features come from, for messages.
pub fn image_source(cfg: &Config) -> String {
    if let Ok(Some(fi)) = from_images(cfg) {
        return format!("the features of {} (data.from_images)", fi.images.display());
    }
    let root = |p: &Path| cfg.data.root().map_or(p.to_path_buf(), |r| r.join(p));
    match cfg.data.block() {
        Ok(DatasetBlock::Synthetic(_)) => "the synthetic generator".to_string(),
        Ok(DatasetBlock::Listed(l)) => match &l.image_features {
            crate::data::listed::ImageSource::Mat { file, .. } => root(file).display().to_string(),
            crate::data::listed::ImageSource::File { path } => path.display().to_string(),
        },
        Ok(DatasetBlock::Pascal(p)) => p.image_features.display().to_string(),
        Ok(DatasetBlock::NusWide(n)) => match &n.image_features {
            crate::data::nus_wide::NusFeatures::Dat { file } => {
                root(&Path::new("Low_Level_Features").join(file)).display().to_string()
            }
            crate::data::nus_wide::NusFeatures::Npy { path } => path.display().to_string(),
        },
        Ok(DatasetBlock::Pairs(p)) => p.image_features.display().to_string(),
        Err(_) => format!("data.{}.image_features", cfg.data.block_key()),
    }
}
