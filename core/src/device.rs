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

// burn-tch is deprecated upstream (gone from Burn 0.23); zoo pins Burn 0.22.1 for it (docs/gpu.md).
#[cfg_attr(feature = "tch", allow(deprecated))]
impl DeviceSpec {
    /// The Burn device, with autodiff enabled, or an error when this build lacks its backend or
    /// LibTorch sees no such GPU.
    pub fn device(&self) -> Result<Device> {
        match self {
            DeviceSpec::Flex => Ok(Device::flex().autodiff()),
            #[cfg(feature = "tch")]
            DeviceSpec::TchCpu => Ok(Device::libtorch().autodiff()),
            #[cfg(feature = "tch")]
            DeviceSpec::TchCuda(index) => {
                let count = tch_cuda_devices();
                if *index >= count {
                    return Err(Error::Config(format!(
                        "device `{self}`: LibTorch sees {count} CUDA GPU{}\nhint: {}",
                        if count == 1 { "" } else { "s" },
                        if count == 0 {
                            "check `nvidia-smi` and that the CUDA build of PyTorch is the one on \
                             the library path (docs/gpu.md), or use `--device tch-cpu`"
                                .to_string()
                        } else {
                            format!("use `tch-cuda:0` to `tch-cuda:{}`", count - 1)
                        }
                    )));
                }
                Ok(Device::libtorch_cuda(*index).autodiff())
            }
            #[cfg(not(feature = "tch"))]
            DeviceSpec::TchCpu | DeviceSpec::TchCuda(_) => Err(Error::Config(format!(
                "device `{self}` needs the LibTorch backend, which this build does not have\nhint: \
                 build with it: `source scripts/setup-libtorch.sh && cargo build --release \
                 --features tch` (docs/gpu.md), or use `--device flex`"
            ))),
        }
    }

    /// The devices this build and machine can run on: `flex`, then with feature `tch`
    /// `tch-cpu` and each CUDA GPU LibTorch sees.
    pub fn available() -> Vec<DeviceSpec> {
        #[allow(unused_mut)]
        let mut all = vec![DeviceSpec::Flex];
        #[cfg(feature = "tch")]
        {
            all.push(DeviceSpec::TchCpu);
            all.extend((0..tch_cuda_devices()).map(DeviceSpec::TchCuda));
        }
        all
    }
}

/// The variable LibTorch reads (once, at its first CUDA matrix product) to let f32 matrix
/// products use TF32 tensor cores; LibTorch's default is off and `tch` has no setter.
pub const TF32_VARIABLE: &str = "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE";

/// Turns TF32 on for f32 matrix products on CUDA (about 7x the FP32 rate on an H100, with a
/// 10-bit mantissa for the products' inputs, as PyTorch's `allow_tf32 = True`) unless
/// `ZOO_TF32=0` or the variable is already set. Call it first thing in `main`, before any
/// thread starts. Returns whether TF32 is on.
pub fn allow_tf32_from_env() -> bool {
    if std::env::var_os(TF32_VARIABLE).is_none() && std::env::var("ZOO_TF32").as_deref() != Ok("0")
    {
        // SAFETY: called at the start of `main`, before any other thread exists.
        unsafe { std::env::set_var(TF32_VARIABLE, "1") };
    }
    tf32_on()
}

/// Whether TF32 is on for f32 matrix products on CUDA.
pub fn tf32_on() -> bool {
    std::env::var(TF32_VARIABLE).as_deref() == Ok("1")
}

/// Whether this build has the LibTorch backend (feature `tch`).
pub const HAS_LIBTORCH: bool = cfg!(feature = "tch");

/// How many CUDA GPUs LibTorch sees (0 without CUDA).
#[cfg(feature = "tch")]
#[allow(deprecated)] // see `DeviceSpec`
pub fn tch_cuda_devices() -> usize {
    use burn::backend::Backend as _;
    burn::backend::LibTorch::device_count(0)
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
