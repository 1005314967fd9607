//! Scalar metrics, written twice under the same slash-namespaced names: TensorBoard event
//! files (tensorboard-rs) and a long-format CSV (`step,epoch,metric,value`).

use anyhow::{Context, Result};
use std::fs::File;
use std::path::Path;
use tensorboard_rs::summary_writer::SummaryWriter;

pub struct MetricsLog {
    tb: SummaryWriter,
    csv: csv::Writer<File>,
}

impl MetricsLog {
    /// Event files go to `tb_dir`, the CSV to `csv_path`.
    pub fn create(tb_dir: &Path, csv_path: &Path) -> Result<MetricsLog> {
        std::fs::create_dir_all(tb_dir).with_context(|| format!("cannot create {}", tb_dir.display()))?;
        let mut csv = csv::Writer::from_path(csv_path)
            .with_context(|| format!("cannot create metrics file {}", csv_path.display()))?;
        csv.write_record(["step", "epoch", "metric", "value"])?;
        Ok(MetricsLog { tb: SummaryWriter::new(tb_dir), csv })
    }

    /// Reopens a run's logs to continue after `epoch`: CSV rows of later epochs (logged
    /// before an interruption, without a checkpoint) are dropped; TensorBoard gets a new
    /// event file in the same folder, which it merges with the earlier ones.
    pub fn resume(tb_dir: &Path, csv_path: &Path, epoch: usize) -> Result<MetricsLog> {
        let mut reader =
            csv::Reader::from_path(csv_path).with_context(|| format!("cannot read {}", csv_path.display()))?;
        let mut kept = Vec::new();
        for (i, rec) in reader.records().enumerate() {
            let rec = rec.with_context(|| format!("{}: bad row {}", csv_path.display(), i + 2))?;
            let e: usize = rec
                .get(1)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{}: bad epoch in row {}", csv_path.display(), i + 2))?;
            if e <= epoch {
                kept.push(rec);
            }
        }
        let tmp = csv_path.with_extension("csv.tmp");
        {
            let mut w = csv::Writer::from_path(&tmp)?;
            w.write_record(["step", "epoch", "metric", "value"])?;
            for r in &kept {
                w.write_record(r)?;
            }
            w.flush()?;
        }
        std::fs::rename(&tmp, csv_path)?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(csv_path)
            .with_context(|| format!("cannot append to {}", csv_path.display()))?;
        let csv = csv::WriterBuilder::new().has_headers(false).from_writer(file);
        Ok(MetricsLog { tb: SummaryWriter::new(tb_dir), csv })
    }

    pub fn scalar(&mut self, tag: &str, step: usize, epoch: usize, value: f64) -> Result<()> {
        self.tb.add_scalar(tag, value as f32, step);
        self.csv
            .write_record([step.to_string(), epoch.to_string(), tag.to_string(), format!("{value}")])
            .context("cannot write the metrics CSV")?;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        self.tb.flush();
        self.csv.flush().context("cannot flush the metrics CSV")?;
        Ok(())
    }
}
