// Project overlay: RCU (`kernel::sync::rcu`, as later mainline has it; not in 6.12). Appended to
// 6.12's `sync.rs` by `tools/lab/overlay.sh`; the module is `rust/kernel/sync/rcu.rs`.
pub mod rcu;
