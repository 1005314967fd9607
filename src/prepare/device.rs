//! The libtorch device a run trains on, from `device: auto | cpu | cuda`.

use crate::config::DeviceChoice;
use anyhow::{ensure, Result};
use tch::Device;

pub fn resolve_device(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda => {
            ensure!(
                tch::Cuda::is_available(),
                "`device: cuda` but libtorch reports no CUDA device (use `device: auto` or `cpu`)"
            );
            Ok(Device::Cuda(0))
        }
    }
}
