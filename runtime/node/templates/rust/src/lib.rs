//! `{{name}}`: upper-cases UTF-8 text and appends a suffix.
//!
//! Parameters: `suffix` (default `!`).

use errand_guest::{Context, ToolError, log};

/// The tool's work, as a plain function that unit tests can call.
pub fn shout(text: &str, suffix: &str) -> String {
    let mut out = text.to_uppercase();
    out.push_str(suffix);
    out
}

fn invoke(input: &[u8], ctx: &Context) -> Result<Vec<u8>, ToolError> {
    let text = std::str::from_utf8(input)
        .map_err(|e| ToolError::InvalidInput(format!("input is not UTF-8 text: {e}")))?;
    let suffix = ctx.param("suffix").unwrap_or("!");
    if suffix.len() > 16 {
        return Err(ToolError::InvalidInput(
            "parameter suffix must be at most 16 bytes".into(),
        ));
    }
    log::info("shouting", &[("bytes", &input.len().to_string())]);
    Ok(shout(text, suffix).into_bytes())
}

errand_guest::export_tool!(invoke);

#[cfg(test)]
mod tests {
    #[test]
    fn shouts() {
        assert_eq!(super::shout("hi there", "!"), "HI THERE!");
    }
}
