//! Device names as users type them: `flex`, `tch-cpu`, `tch-cuda:N`.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

use crate::{Error, Result};

/// A compute device by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// Burn's pure-Rust CPU backend; always available; the default.
    Flex,
    /// LibTorch on the CPU (feature `tch`).
    TchCpu,
    /// LibTorch on CUDA device `N` (feature `tch`).
    TchCuda(usize),
}

/// The device names `zoo list` prints.
pub const DEVICE_NAMES: &[&str] = &["flex", "tch-cpu", "tch-cuda:N"];

impl FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "flex" | "cpu" => Ok(DeviceSpec::Flex),
            "tch-cpu" => Ok(DeviceSpec::TchCpu),
            _ => {
                if let Some(index) = s.strip_prefix("tch-cuda:") {
                    return index.parse().map(DeviceSpec::TchCuda).map_err(|_| {
                        Error::Config(format!(
                            "bad device `{s}`: `{index}` is not a GPU index\nhint: write `tch-cuda:0`"
                        ))
                    });
                }
                Err(Error::unknown(
                    "device",
                    s,
                    ["flex", "tch-cpu", "tch-cuda:0"],
                ))
            }
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Flex => write!(f, "flex"),
            DeviceSpec::TchCpu => write!(f, "tch-cpu"),
            DeviceSpec::TchCuda(i) => write!(f, "tch-cuda:{i}"),
        }
    }
}

impl DeviceSpec {
    /// The Burn device, with autodiff enabled, or an error when this build lacks its backend.
    pub fn device(&self) -> Result<Device> {
        match self {
            DeviceSpec::Flex => Ok(Device::flex().autodiff()),
            DeviceSpec::TchCpu | DeviceSpec::TchCuda(_) => Err(Error::Config(format!(
                "device `{self}` needs the LibTorch backend, which this build does not have\nhint: use `--device flex`"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_round_trip() {
        for name in ["flex", "tch-cpu", "tch-cuda:3"] {
            assert_eq!(name.parse::<DeviceSpec>().unwrap().to_string(), name);
        }
    }

    #[test]
    fn bad_device_names_suggest_a_fix() {
        let err = "flx".parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(err.contains("did you mean `flex`"), "{err}");
        let err = "tch-cuda:x".parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(err.contains("tch-cuda:0"), "{err}");
    }
}
