//! Where an address is: the main thread's stack, the heap, or another mapping.
//!
//! The demo prints addresses; this module says what they are, by looking
//! the address up in `/proc/self/maps`, the kernel's list of this process's
//! memory mappings (chapter 1 counts them). The main thread's stack is the
//! line named `[stack]`, and the memory `malloc` takes from `brk` is `[heap]`.
//! Other threads' stacks, and the allocator's arenas for other threads, are
//! anonymous mappings (no name).

use std::io;

/// What kind of memory `address` is in, as `/proc/self/maps` names it:
/// `"stack"`, `"heap"`, `"anonymous mapping"`, or a file's path.
/// `None` if no mapping holds it.
pub fn region_of(address: usize) -> io::Result<Option<String>> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    Ok(maps.lines().find_map(|line| region_in_line(line, address)))
}

/// One line of `/proc/self/maps`:
/// `55d4c0a00000-55d4c0a21000 rw-p 00000000 00:00 0      [heap]`.
fn region_in_line(line: &str, address: usize) -> Option<String> {
    let mut columns = line.split_whitespace();
    let (start, end) = columns.next()?.split_once('-')?;
    let (start, end) = (usize::from_str_radix(start, 16).ok()?, usize::from_str_radix(end, 16).ok()?);
    if !(start..end).contains(&address) {
        return None;
    }
    // permissions, offset, device, inode, then the name (may be missing).
    let name = columns.nth(4).unwrap_or_default();
    Some(match name {
        "" => "anonymous mapping".to_string(),
        "[stack]" => "stack".to_string(),
        "[heap]" => "heap".to_string(),
        other => other.to_string(),
    })
}

/// `0x7ffd5a1c3e40 (stack)`: the address and what it is in.
pub fn describe(address: usize) -> String {
    match region_of(address) {
        Ok(Some(region)) => format!("{address:#x} ({region})"),
        _ => format!("{address:#x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "Miri's addresses are its own, not in /proc/self/maps")]
    fn a_local_is_on_the_stack_and_a_box_on_the_heap() -> io::Result<()> {
        // Tests run on threads other than main, whose stacks are anonymous
        // mappings; a fresh thread named by us still has no `[stack]` line.
        let local = 7u64;
        let on_stack = region_of((&raw const local).addr())?;
        assert!(matches!(on_stack.as_deref(), Some("stack" | "anonymous mapping")), "{on_stack:?}");
        let boxed = Box::new(7u64);
        assert!(region_of((&raw const *boxed).addr())?.is_some());
        assert_eq!(region_in_line("1000-2000 rw-p 00000000 00:00 0    [heap]", 0x1800).as_deref(), Some("heap"));
        assert_eq!(region_in_line("1000-2000 rw-p 00000000 00:00 0", 0x1000).as_deref(), Some("anonymous mapping"));
        assert_eq!(region_in_line("1000-2000 rw-p 00000000 00:00 0", 0x2000), None);
        Ok(())
    }
}
