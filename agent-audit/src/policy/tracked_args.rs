//! The syscall arguments whose values the recorder keeps: which argument of which syscall,
//! summarised how, masked to which bits, and why.

use serde::{Deserialize, Deserializer};

use crate::allowlist::{ArgField, ArgKind};

/// Every tracked argument.
#[derive(Debug, Deserialize)]
pub struct TrackedArgs {
    /// What the list is for and how it is applied.
    pub about: String,
    /// The tracked arguments, at most two per syscall.
    pub args: Vec<TrackedArg>,
}

/// One tracked argument of one syscall.
#[derive(Debug, Deserialize)]
pub struct TrackedArg {
    /// Syscall name (resolved to a number per ABI at load time; absent on some ABIs).
    pub syscall: String,
    /// Argument index as seccomp sees it (0..=5).
    pub index: u8,
    /// Set when the value is read from user memory through the argument.
    #[serde(default)]
    pub field: Option<ArgField>,
    /// Union of bits or set of values.
    pub kind: ArgKind,
    /// Bits kept before recording (written as a hex string).
    #[serde(deserialize_with = "hex_u64")]
    pub mask: u64,
    /// Why the values matter.
    pub reason: String,
}

impl TrackedArgs {
    /// The tracked arguments of `syscall`, in file order.
    pub fn of<'a>(&'a self, syscall: &'a str) -> impl Iterator<Item = &'a TrackedArg> + 'a {
        self.args.iter().filter(move |a| a.syscall == syscall)
    }

    /// Whether any argument of `syscall` is tracked.
    pub fn tracks(&self, syscall: &str) -> bool {
        self.of(syscall).next().is_some()
    }
}

/// `"0xfff7f7ff"` → 0xfff7f7ff: masks read better in hex, and JSON has no hex numbers.
fn hex_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let text = String::deserialize(d)?;
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| serde::de::Error::custom(format!("mask {text:?} must start with 0x")))?;
    u64::from_str_radix(digits, 16)
        .map_err(|e| serde::de::Error::custom(format!("mask {text:?}: {e}")))
}
