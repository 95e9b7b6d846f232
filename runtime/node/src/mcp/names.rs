//! MCP tool names for capabilities.
//!
//! MCP tool names are 1–128 characters of `A-Z a-z 0-9 _ . -`; capability
//! names are 1–64 bytes of `a-z 0-9 . _ - /`. A capability tool is one
//! capability name at one major version, and its tool name is:
//!
//! * the capability name, with each `/` written `_S_`;
//! * then `_V` and the major version, unless the major version is 1 and the
//!   name is not `find` or `invoke` (the generic tools' names).
//!
//! | capability | version | tool |
//! |---|---|---|
//! | `text-stats` | 1.2.0 | `text-stats` |
//! | `text-stats` | 2.0.1 | `text-stats_V2` |
//! | `text-stats` | 0.9.0 | `text-stats_V0` |
//! | `image/resize` | 1.0.0 | `image_S_resize` |
//! | `find` | 1.0.0 | `find_V1` |
//!
//! Capability names hold no upper-case letter, so every `S` and `V` in a tool
//! name comes from this mapping: it is deterministic and collision-free
//! ([`capability_of`] inverts it), and no capability tool is named `find` or
//! `invoke`. A name whose tool name would pass 128 characters (over 32
//! slashes) has no tool.

/// The generic discovery tool.
pub const FIND: &str = "find";
/// The generic invoke-by-intent tool.
pub const INVOKE: &str = "invoke";
/// The longest MCP tool name.
pub const MAX_TOOL_NAME: usize = 128;

/// The tool name of `capability` at major version `major`, or `None` if it
/// would be longer than [`MAX_TOOL_NAME`].
pub fn tool_name(capability: &str, major: u32) -> Option<String> {
    let mut out = capability.replace('/', "_S_");
    if major != 1 || capability == FIND || capability == INVOKE {
        out.push_str(&format!("_V{major}"));
    }
    (!out.is_empty() && out.len() <= MAX_TOOL_NAME).then_some(out)
}

/// The capability name and major version a tool name stands for: the
/// inverse of [`tool_name`] (`None` for names it never makes).
pub fn capability_of(tool: &str) -> Option<(String, u32)> {
    let (base, major) = match tool.rsplit_once("_V") {
        Some((base, digits))
            if !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0')) =>
        {
            (base, digits.parse().ok()?)
        }
        _ => (tool, 1),
    };
    let name = base.replace("_S_", "/");
    let valid = name.len() <= 64 && errand_core::descriptor::validate_name(&name).is_ok();
    (valid && tool_name(&name, major).as_deref() == Some(tool)).then_some((name, major))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_examples_hold() {
        assert_eq!(tool_name("text-stats", 1).unwrap(), "text-stats");
        assert_eq!(tool_name("text-stats", 2).unwrap(), "text-stats_V2");
        assert_eq!(tool_name("text-stats", 0).unwrap(), "text-stats_V0");
        assert_eq!(tool_name("image/resize", 1).unwrap(), "image_S_resize");
        assert_eq!(tool_name("find", 1).unwrap(), "find_V1");
        assert_eq!(tool_name("invoke", 3).unwrap(), "invoke_V3");
    }

    #[test]
    fn names_round_trip_and_stay_within_the_mcp_alphabet() {
        let names = [
            "a",
            "text-stats",
            "a/b",
            "a_/b",
            "a_s_b",
            "a__b",
            "x.v2",
            "x_v2",
            "0/._-/",
            "find",
            "invoke",
            "finder",
        ];
        for n in names {
            for major in [0, 1, 2, 10, u32::MAX] {
                let t = tool_name(n, major).unwrap();
                assert!(t.len() <= MAX_TOOL_NAME);
                assert!(
                    t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)),
                    "{t}"
                );
                assert_ne!(t, FIND);
                assert_ne!(t, INVOKE);
                assert_eq!(capability_of(&t), Some((n.to_owned(), major)), "{t}");
            }
        }
    }

    #[test]
    fn distinct_capabilities_get_distinct_tools() {
        // Exhaustive over short names from the capability alphabet.
        let alphabet = ['a', 's', 'v', '1', '.', '_', '-', '/'];
        let mut seen = std::collections::HashMap::new();
        let mut names = vec![String::new()];
        for _ in 0..3 {
            names = names
                .iter()
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            for n in &names {
                if errand_core::descriptor::validate_name(n).is_ok() {
                    for major in [0, 1, 2, 12] {
                        let t = tool_name(n, major).unwrap();
                        if let Some(prev) = seen.insert(t.clone(), (n.clone(), major)) {
                            panic!("{t} for both {prev:?} and {:?}", (n, major));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn over_long_names_have_no_tool() {
        let slashes = format!("a{}", "/".repeat(63));
        assert_eq!(slashes.len(), 64);
        assert_eq!(tool_name(&slashes, 1), None);
        let long = "a".repeat(64);
        assert_eq!(tool_name(&long, u32::MAX).unwrap().len(), 64 + 12);
        assert_eq!(capability_of("Nope"), None);
        assert_eq!(capability_of("x_V01"), None);
        assert_eq!(capability_of("find"), None);
    }
}
