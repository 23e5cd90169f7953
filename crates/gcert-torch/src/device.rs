//! Choosing where tensors live: CUDA when libtorch sees a GPU, otherwise the CPU, unless the user says.

use std::fmt;
use std::str::FromStr;

use tch::Device;

use crate::error::{Error, Result};

/// The `--device` option: `auto` (CUDA if available, else CPU), `cpu`, `cuda` or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(i)) => Ok(DeviceChoice::Cuda(i)),
                _ => Err(Error::input(format!("unknown device '{s}': expected auto, cpu, cuda or cuda:N"))),
            },
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => write!(f, "auto"),
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl DeviceChoice {
    /// The libtorch device; asking for CUDA where libtorch sees no GPU (or not that many) is an error.
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda(i) => {
                let n = tch::Cuda::device_count() as usize;
                if i < n {
                    Ok(Device::Cuda(i))
                } else if n == 0 {
                    Err(Error::input(format!(
                        "device cuda:{i} requested but libtorch sees no CUDA device (cuda available: {})",
                        tch::Cuda::is_available()
                    )))
                } else {
                    Err(Error::input(format!("device cuda:{i} requested but only {n} CUDA devices exist")))
                }
            }
        }
    }
}

/// A one-line description of a device for progress output.
pub fn describe(device: Device) -> String {
    match device {
        Device::Cpu => match tch::get_num_threads() {
            1 => "cpu (1 thread)".to_string(),
            n => format!("cpu ({n} threads)"),
        },
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
        assert_eq!("CPU".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!("cuda".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(0));
        assert_eq!("cuda:2".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(2));
        let err = "tpu".parse::<DeviceChoice>().unwrap_err().to_string();
        assert!(err.contains("unknown device 'tpu'"), "{err}");
    }

    #[test]
    fn cpu_always_resolves_and_auto_matches_libtorch() {
        assert_eq!(DeviceChoice::Cpu.resolve().unwrap(), Device::Cpu);
        let auto = DeviceChoice::Auto.resolve().unwrap();
        assert_eq!(auto.is_cuda(), tch::Cuda::is_available());
    }

    #[test]
    fn missing_cuda_device_is_a_clear_error() {
        let n = tch::Cuda::device_count() as usize;
        let err = DeviceChoice::Cuda(n).resolve().unwrap_err().to_string();
        assert!(err.contains(&format!("cuda:{n} requested")), "{err}");
    }
}
