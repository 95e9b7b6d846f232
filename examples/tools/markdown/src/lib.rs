//! `markdown`: converts CommonMark (with tables, strikethrough and task
//! lists) to HTML. Raw HTML in the input is escaped, so the output is safe
//! to embed.

use errand_guest::{Context, ToolError};
use pulldown_cmark::{Event, Options, Parser, html};

/// Renders `md` to HTML, escaping raw HTML.
pub fn to_html(md: &str) -> String {
    let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let parser = Parser::new_ext(md, opts).map(|e| match e {
        Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
        e => e,
    });
    let mut out = String::with_capacity(md.len() * 3 / 2);
    html::push_html(&mut out, parser);
    out
}

fn invoke(input: &[u8], _ctx: &Context) -> Result<Vec<u8>, ToolError> {
    let md = std::str::from_utf8(input)
        .map_err(|_| ToolError::InvalidInput("Markdown must be UTF-8".into()))?;
    Ok(to_html(md).into_bytes())
}

errand_guest::export_tool!(invoke);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_commonmark_and_tables() {
        assert_eq!(to_html("# Hi\n\n*x*"), "<h1>Hi</h1>\n<p><em>x</em></p>\n");
        assert!(to_html("|a|b|\n|-|-|\n|1|2|").contains("<table>"));
    }

    #[test]
    fn raw_html_is_escaped() {
        let html = to_html("<script>alert(1)</script>");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
    }
}
