//! Peak memory of a benchmark stage: the process's peak RSS on the CPU, the device's memory in
//! use (`nvidia-smi`) on CUDA.

use std::time::Duration;

use zoo_core::device::DeviceSpec;

/// Peak memory of a stage: the process's peak RSS on the CPU, `nvidia-smi`'s `memory.used`
/// sampled every 50 ms on CUDA.
pub enum MemoryProbe {
    /// Linux `/proc/self/status` `VmHWM`, reset through `/proc/self/clear_refs`.
    Rss,
    /// `nvidia-smi` for GPU `index`, sampled by a thread; the largest value since the reset.
    Gpu {
        index: usize,
        peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    },
    /// Neither is available.
    None,
}

impl MemoryProbe {
    pub fn new(spec: &DeviceSpec) -> Self {
        if let DeviceSpec::TchCuda(index) = *spec {
            if nvidia_smi_used(index).is_none() {
                return MemoryProbe::None;
            }
            let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            let watched = peak.clone();
            std::thread::spawn(move || {
                loop {
                    if let Some(used) = nvidia_smi_used(index) {
                        watched.fetch_max(used, std::sync::atomic::Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
            return MemoryProbe::Gpu { index, peak };
        }
        if vm_hwm().is_some() {
            MemoryProbe::Rss
        } else {
            MemoryProbe::None
        }
    }

    pub fn source(&self) -> Option<&'static str> {
        match self {
            MemoryProbe::Rss => Some("peak RSS"),
            MemoryProbe::Gpu { .. } => Some("nvidia-smi"),
            MemoryProbe::None => None,
        }
    }

    pub fn reset(&self) {
        match self {
            // "5" resets the peak RSS (Linux 4.0+); without it the peak is the process's.
            MemoryProbe::Rss => {
                let _ = std::fs::write("/proc/self/clear_refs", "5");
            }
            MemoryProbe::Gpu { index, peak } => {
                peak.store(
                    nvidia_smi_used(*index).unwrap_or(0),
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
            MemoryProbe::None => {}
        }
    }

    pub fn peak(&self) -> Option<u64> {
        match self {
            MemoryProbe::Rss => vm_hwm(),
            MemoryProbe::Gpu { index, peak } => {
                if let Some(used) = nvidia_smi_used(*index) {
                    peak.fetch_max(used, std::sync::atomic::Ordering::Relaxed);
                }
                Some(peak.load(std::sync::atomic::Ordering::Relaxed))
            }
            MemoryProbe::None => None,
        }
    }
}

/// The process's peak resident set, bytes (`VmHWM` in `/proc/self/status`).
fn vm_hwm() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Memory in use on GPU `index`, bytes, as `nvidia-smi` reports it.
fn nvidia_smi_used(index: usize) -> Option<u64> {
    let output = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=memory.used",
            "--format=csv,noheader,nounits",
            &format!("--id={index}"),
        ])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let mib: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .ok()?;
    Some(mib * 1024 * 1024)
}
