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
