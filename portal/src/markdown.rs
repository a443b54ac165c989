//! API descriptions are Markdown written by admins (often copied from an
//! OpenAPI document), shown to every visitor. They are rendered with
//! pulldown-cmark and made safe by construction: raw HTML is shown as text,
//! links go only to http(s), mail or this site, images become their
//! description, and headings sit below the page's own.

use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd, html};

/// The description as safe HTML.
pub(crate) fn to_html(markdown: &str) -> String {
    let events = Parser::new_ext(markdown, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH).filter_map(
        |event| match event {
            // Shown, escaped, as the text it is.
            Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
            // An image would load from anywhere (and the page's policy would
            // block it): its alt text, which follows as text events, stays.
            Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => None,
            Event::Start(Tag::Link { link_type, dest_url, title, id }) => {
                let dest_url = if safe_url(&dest_url) { dest_url } else { CowStr::Borrowed("#") };
                Some(Event::Start(Tag::Link { link_type, dest_url, title, id }))
            }
            Event::Start(Tag::Heading { level, .. }) => {
                Some(Event::Start(Tag::Heading { level: below_page(level), id: None, classes: vec![], attrs: vec![] }))
            }
            Event::End(TagEnd::Heading(level)) => Some(Event::End(TagEnd::Heading(below_page(level)))),
            other => Some(other),
        },
    );
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

/// The description as plain text, cut to about `max` characters, for lists.
pub(crate) fn excerpt(markdown: &str, max: usize) -> String {
    let mut text = String::new();
    for event in Parser::new(markdown) {
        match event {
            Event::Text(t) | Event::Code(t) => text.push_str(&t),
            Event::SoftBreak | Event::HardBreak | Event::End(TagEnd::Paragraph | TagEnd::Heading(_) | TagEnd::Item)
                if !text.ends_with(' ') =>
            {
                text.push(' ')
            }
            _ => {}
        }
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", text[..cut].trim_end()),
        None => text,
    }
}

/// The page has its `h1` and `h2`s; a description's headings go below them.
fn below_page(level: HeadingLevel) -> HeadingLevel {
    match level {
        HeadingLevel::H1 => HeadingLevel::H3,
        HeadingLevel::H2 => HeadingLevel::H4,
        HeadingLevel::H3 => HeadingLevel::H5,
        _ => HeadingLevel::H6,
    }
}

/// http, https and mailto URLs, and references within this site. Anything
/// with another scheme (`javascript:`, `data:`, `java\tscript:` …) is not.
fn safe_url(url: &str) -> bool {
    let url = url.trim_matches(|c: char| c.is_whitespace() || c.is_control());
    let lower = url.to_ascii_lowercase();
    if ["http://", "https://", "mailto:"].iter().any(|scheme| lower.starts_with(scheme)) {
        return true;
    }
    // Relative: no scheme, i.e. no ':' before the first '/', '?' or '#'.
    let head = url.split(['/', '?', '#']).next().unwrap_or_default();
    !head.contains(':') && !url.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_html() {
        let html =
            to_html("# Weather\n\nForecasts **by the hour**, see [docs](https://example.com/docs).\n\n- a\n- `b`\n");
        assert!(html.contains("<h3>Weather</h3>"), "{html}");
        assert!(html.contains("<strong>by the hour</strong>"), "{html}");
        assert!(html.contains("<a href=\"https://example.com/docs\">docs</a>"), "{html}");
        assert!(html.contains("<li><code>b</code></li>"), "{html}");
    }

    #[test]
    fn nothing_in_a_description_can_run_or_load() {
        let hostile = "<script>alert(1)</script>\n\n<img src=x onerror=alert(2)> and <b onclick=x>bold</b>\n\n\
                       [a](javascript:alert(3)) [b](JAVASCRIPT:alert(4)) [c](java\tscript:alert(5)) \
                       [d](data:text/html,<script>alert(6)</script>) <javascript:alert(7)>\n\n\
                       ![tracker](https://evil.example/pixel.png) [ok](/apis/weather) [mail](mailto:a@b.co)";
        let html = to_html(hostile);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<b "), "{html}");
        assert!(!html.to_ascii_lowercase().contains("href=\"javascript"), "{html}");
        assert!(!html.contains("href=\"java"), "{html}");
        assert!(!html.contains("href=\"data:"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "raw HTML is shown as text: {html}");
        assert!(html.contains("tracker"), "an image leaves its description: {html}");
        assert!(html.contains("href=\"/apis/weather\"") && html.contains("href=\"mailto:a@b.co\""), "{html}");
    }

    #[test]
    fn excerpts_are_plain_text() {
        assert_eq!(excerpt("# Title\n\nSome **bold** text.", 100), "Title Some bold text.");
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("Forecasts **by the hour**.\n\n- a\n- b", 100), "Forecasts by the hour. a b");
    }
}
