// Project overlay: RCU (`kernel::sync::rcu`) and the completion (`kernel::sync::completion`),
// as later mainline has them (not in 6.12). Appended to 6.12's `sync.rs` by
// `tools/lab/overlay.sh`; the modules are `rust/kernel/sync/rcu.rs` and `completion.rs`.
pub mod completion;
pub mod rcu;
pub use completion::Completion;
