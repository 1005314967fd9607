//! `tgcn`: train, evaluate and export text-as-graph cross-modal retrieval models.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use tgcn::config::{dataset_config_path, Config, Layer};

#[derive(Parser)]
#[command(name = "tgcn", version, about = "Text-as-graph cross-modal retrieval (Yu et al. 2018) on libtorch")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train on a dataset from `configs/<dataset>.yaml`, then evaluate and export.
    Train {
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
    },
    /// Re-evaluate a finished run from its best checkpoint.
    Eval {
        #[arg(long)]
        run: PathBuf,
    },
    /// Re-export a finished run's best checkpoint to TorchScript.
    Export {
        #[arg(long)]
        run: PathBuf,
    },
    /// Print versions and the devices libtorch sees.
    Info,
    /// Validate and prepare a dataset: counts per split and class, vocabulary, graph, OOV.
    Data {
        #[arg(long, default_value = "synthetic")]
        dataset: String,
        #[arg(long, default_value = "configs")]
        configs: PathBuf,
        #[arg(long = "config")]
        extra: Vec<PathBuf>,
        #[arg(long = "set")]
        sets: Vec<String>,
    },
    /// A markdown table of finished runs, mean ± std over seeds, grouped by run name.
    Report {
        /// Run folders (e.g. runs/eng-wiki/*).
        runs: Vec<PathBuf>,
    },
    /// Benchmark kNN search, the Chebyshev layer, a training step and ranking.
    Bench {
        /// cpu, cuda or auto.
        #[arg(long, default_value = "auto")]
        device: String,
        /// Smaller sizes, for a smoke run.
        #[arg(long)]
        quick: bool,
    },
}

/// The layered config: `configs/<dataset>.yaml`, each `--config`, each `--set`.
fn resolve(configs: &Path, dataset: &str, extra: &[PathBuf], sets: &[String]) -> Result<Config> {
    let mut layers = vec![Layer::from_file(&dataset_config_path(configs, dataset)?)?];
    for p in extra {
        layers.push(Layer::from_file(p)?);
    }
    for s in sets {
        layers.push(Layer::from_set(s)?);
    }
    Config::from_layers(&layers)
}

fn run() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Train { dataset, configs, extra, sets, runs, dry_run, resume, stop_after_epoch } => {
            let opts = tgcn::train::TrainOptions { stop_after_epoch };
            if let Some(run) = resume {
                tgcn::train::resume(&run, &opts)?;
                return Ok(());
            }
            let cfg = resolve(&configs, &dataset, &extra, &sets)?;
            if dry_run {
                print!("{}", cfg.to_yaml()?);
                return Ok(());
            }
            tgcn::train::train(&cfg, &runs, &opts)?;
        }
        Cmd::Data { dataset, configs, extra, sets } => {
            let cfg = resolve(&configs, &dataset, &extra, &sets)?;
            let device = tgcn::pipeline::resolve_device(cfg.device)?;
            let data = tgcn::pipeline::prepare(&cfg, device, Some(Path::new("runs/cache")))?;
            println!("{}", data.summary());
        }
        Cmd::Report { runs } => {
            print!("{}", tgcn::report::report(&runs)?);
        }
        Cmd::Eval { run } => {
            tgcn::train::eval_run(&run)?;
        }
        Cmd::Export { run } => {
            tgcn::train::export_existing(&run)?;
        }
        Cmd::Bench { device, quick } => {
            let choice: tgcn::config::DeviceChoice = serde_yaml::from_str(&device)
                .map_err(|_| anyhow::anyhow!("--device must be auto, cpu or cuda, got {device:?}"))?;
            print!("{}", tgcn::bench::run(tgcn::pipeline::resolve_device(choice)?, quick)?);
        }
        Cmd::Info => {
            println!("tgcn {}", env!("CARGO_PKG_VERSION"));
            println!("libtorch {}", env!("TGCN_LIBTORCH_VERSION"));
            println!("cuda available: {}", tch::Cuda::is_available());
            println!("cuda devices: {}", tch::Cuda::device_count());
            println!("cudnn available: {}", tch::Cuda::cudnn_is_available());
            println!("threads: {}", tch::get_num_threads());
        }
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
