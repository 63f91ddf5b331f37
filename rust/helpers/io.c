// SPDX-License-Identifier: GPL-2.0
/* Helpers for rust/kernel/io.rs: MMIO accessors (static inlines/macros of <asm/io.h>). */

#include <linux/io.h>

u8 rust_helper_readb(const volatile void __iomem *addr) { return readb(addr); }
u16 rust_helper_readw(const volatile void __iomem *addr) { return readw(addr); }
u32 rust_helper_readl(const volatile void __iomem *addr) { return readl(addr); }
#ifdef CONFIG_64BIT
u64 rust_helper_readq(const volatile void __iomem *addr) { return readq(addr); }
#endif
void rust_helper_writeb(u8 v, volatile void __iomem *addr) { writeb(v, addr); }
void rust_helper_writew(u16 v, volatile void __iomem *addr) { writew(v, addr); }
void rust_helper_writel(u32 v, volatile void __iomem *addr) { writel(v, addr); }
#ifdef CONFIG_64BIT
void rust_helper_writeq(u64 v, volatile void __iomem *addr) { writeq(v, addr); }
#endif
u32 rust_helper_readl_relaxed(const volatile void __iomem *addr) { return readl_relaxed(addr); }
void rust_helper_writel_relaxed(u32 v, volatile void __iomem *addr) { writel_relaxed(v, addr); }
#ifdef CONFIG_64BIT
u64 rust_helper_readq_relaxed(const volatile void __iomem *addr) { return readq_relaxed(addr); }
void rust_helper_writeq_relaxed(u64 v, volatile void __iomem *addr) { writeq_relaxed(v, addr); }
#endif
