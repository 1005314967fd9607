//! Digests of what a run was trained on, compared on resume and eval so that a changed
//! dataset is caught before it meets a checkpoint.

use super::prepared::Prepared;
use tch::Device;

/// dataset is caught before it meets a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataFingerprint {
    /// Vocabulary words in vertex order (and their number).
    pub vocab: String,
    pub vocab_size: usize,
    /// L̃ entries.
    pub graph: String,
    /// Item ids of train, val and test, in order.
    pub splits: String,
    /// Raw image features and labels of every split.
    pub features: String,
}

impl DataFingerprint {
    /// The parts that differ from `other`, by name.
    pub fn differences(&self, other: &DataFingerprint) -> Vec<String> {
        let mut d = Vec::new();
        if self.vocab != other.vocab {
            d.push(format!("vocabulary ({} words, now {})", self.vocab_size, other.vocab_size));
        }
        for (name, a, b) in [
            ("word graph", &self.graph, &other.graph),
            ("splits", &self.splits, &other.splits),
            ("image features or labels", &self.features, &other.features),
        ] {
            if a != b {
                d.push(name.to_string());
            }
        }
        d
    }
}

impl Prepared {
    pub fn fingerprint(&self) -> DataFingerprint {
        use sha2::{Digest, Sha256};
        let hex = |h: Sha256| h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect::<String>();
        let mut v = Sha256::new();
        for w in &self.vocab.words {
            v.update(w.as_bytes());
            v.update(b"\n");
        }
        let mut g = Sha256::new();
        g.update(self.laplacian.n.to_le_bytes());
        for (k, (name, lap)) in std::iter::once(("", &self.laplacian))
            .chain(self.relation_laplacians.iter().map(|(n, l)| (n.as_str(), l)))
            .enumerate()
        {
            if k > 0 {
                // Separate relations only: a union graph's hash is as before.
                g.update(name.as_bytes());
            }
            for ((r, c), x) in lap.rows.iter().zip(&lap.cols).zip(&lap.vals) {
                g.update(r.to_le_bytes());
                g.update(c.to_le_bytes());
                g.update(x.to_le_bytes());
            }
        }
        let (mut s, mut f) = (Sha256::new(), Sha256::new());
        for t in [&self.train, &self.val, &self.test] {
            for id in &t.ids {
                s.update(id.as_bytes());
                s.update(b"\n");
            }
            s.update(b"--\n");
            for x in [&t.images_raw, &t.labels] {
                let x = x.to_device(Device::Cpu).contiguous();
                let vals: Vec<f32> = Vec::try_from(x.flatten(0, -1)).unwrap_or_default();
                f.update(vals.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
            }
        }
        DataFingerprint { vocab: hex(v), vocab_size: self.vocab.len(), graph: hex(g), splits: hex(s), features: hex(f) }
    }
}
