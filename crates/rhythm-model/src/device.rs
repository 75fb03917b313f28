//! Where tensors live: the `--device` setting (`cpu`, `cuda`, `cuda:N`,
//! `metal`), declared once and used by every command that loads a model.
//!
//! A device the binary was not built for is a one-line error that says how
//! to build it, never a silent fall-back to the CPU. GPU builds
//! (`--features cuda`, `--features metal`) compile the same code paths but
//! are not tested by this project's CI, which has no GPU.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use candle_core::Device;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ModelError, Result};
use crate::pretrained::{LoadOptions, Pretrained};

/// A device named on the command line or in a config file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The CPU (the default).
    #[default]
    Cpu,
    /// CUDA GPU number `N` (`cuda` is `cuda:0`); needs `--features cuda`.
    Cuda(usize),
    /// Apple's Metal GPU; needs `--features metal`.
    Metal,
}

impl DeviceSpec {
    /// Whether this binary was built with the device's backend.
    pub fn available(self) -> bool {
        match self {
            DeviceSpec::Cpu => true,
            DeviceSpec::Cuda(_) => cfg!(feature = "cuda"),
            DeviceSpec::Metal => cfg!(feature = "metal"),
        }
    }

    /// The candle device; a one-line error when the binary lacks the
    /// backend or the device cannot be opened.
    pub fn device(self) -> Result<Device> {
        let feature = match self {
            DeviceSpec::Cpu => return Ok(Device::Cpu),
            DeviceSpec::Cuda(_) => "cuda",
            DeviceSpec::Metal => "metal",
        };
        if !self.available() {
            return Err(invalid(format!(
                "{self}: this rhythm was built without {feature} support \
                 (rebuild with `cargo build --release --features {feature}`)"
            )));
        }
        let opened = match self {
            DeviceSpec::Cuda(n) => Device::new_cuda(n),
            _ => Device::new_metal(0),
        };
        opened.map_err(|e| {
            invalid(format!(
                "{self}: cannot open it: {}",
                e.to_string().lines().next().unwrap_or("")
            ))
        })
    }

    /// Loads a model directory onto this device (inference weights).
    pub fn load(self, dir: impl AsRef<Path>) -> Result<Pretrained> {
        Pretrained::load_with(
            dir,
            &LoadOptions {
                device: self.device()?,
                trainable: false,
            },
        )
    }
}

/// The one-line error of a bad `--device`.
fn invalid(msg: String) -> ModelError {
    ModelError::InvalidArgument {
        name: "device",
        msg,
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceSpec::Metal => f.write_str("metal"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            invalid(format!(
                "'{s}': expected cpu, cuda, cuda:N (N a GPU number) or metal"
            ))
        };
        match s.trim() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            "metal" => Ok(DeviceSpec::Metal),
            other => {
                let n = other.strip_prefix("cuda:").ok_or_else(bad)?;
                let n: usize = n.parse().map_err(|_| bad())?;
                if n > 1024 {
                    return Err(bad());
                }
                Ok(DeviceSpec::Cuda(n))
            }
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The `--device` flag (and `device` key), for every command that runs a
/// model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct DeviceSettings {
    /// Device: cpu, cuda, cuda:N or metal (GPU builds need `--features cuda`
    /// or `metal`, and are untested). Default cpu.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = DeviceSpec::Cpu))]
    pub device: DeviceSpec,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_are_named() {
        for (s, d) in [
            ("cpu", DeviceSpec::Cpu),
            ("cuda:0", DeviceSpec::Cuda(0)),
            ("cuda:3", DeviceSpec::Cuda(3)),
            ("metal", DeviceSpec::Metal),
        ] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap(), d);
            assert_eq!(d.to_string(), s);
        }
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        for s in ["gpu", "cuda:", "cuda:x", "cuda:-1", "cuda:99999"] {
            let e = s.parse::<DeviceSpec>().unwrap_err().to_string();
            assert!(e.contains(&format!("`device`: '{s}'")), "{e}");
        }
    }

    #[test]
    fn a_missing_backend_is_a_clear_error() {
        assert!(matches!(DeviceSpec::Cpu.device(), Ok(Device::Cpu)));
        if !cfg!(feature = "cuda") {
            let e = DeviceSpec::Cuda(0).device().unwrap_err().to_string();
            assert!(e.contains("built without cuda support"), "{e}");
            assert!(e.contains("--features cuda"), "{e}");
        }
        if !cfg!(feature = "metal") {
            let e = DeviceSpec::Metal.device().unwrap_err().to_string();
            assert!(e.contains("built without metal support"), "{e}");
        }
    }
}
