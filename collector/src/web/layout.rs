//! The frame every page shares, the status page's and the admin pages': doctype, `<head>` with
//! the stylesheet and an optional script, and the body.
//!
//! Pages are maud templates ([`maud::html!`]), compiled with the collector. A template escapes
//! every value it is given (`&`, `<`, `>`, `"`; attribute values are always double-quoted), so
//! no page is put together from strings and none can forget to escape a check's name or a log
//! line. Only [`PreEscaped`] text goes out as written, and the pages use it for one constant.

use maud::{Markup, PreEscaped, Render, html};

/// The doctype every page starts with. maud's `DOCTYPE` is in upper case; the pages have always
/// said it in lower case.
pub(super) const DOCTYPE: PreEscaped<&str> = PreEscaped("<!doctype html>");

/// What every page's `<head>` holds: the charset, the viewport, `title` in the tab,
/// `/assets/lookout.css`, and the `script` (deferred) when there is one.
pub(super) fn head_tags(title: &str, script: Option<&str>) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width,initial-scale=1";
        title { (title) }
        link rel="stylesheet" href="/assets/lookout.css";
        @if let Some(src) = script {
            script src=(src) defer {}
        }
    }
}

/// A whole page: [`head_tags`], `extra_head` after them, and `body`.
pub(super) fn document(
    title: &str,
    script: Option<&str>,
    extra_head: Markup,
    body: Markup,
) -> Markup {
    html! {
        (Reserve(body.0.len() + 1024))
        (DOCTYPE)
        html lang="en" {
            head {
                (head_tags(title, script))
                (extra_head)
            }
            body { (body) }
        }
    }
}

/// Room reserved in a template's output, which maud sizes from the template's own length and
/// then doubles as it fills: spliced first, it makes room for a large page at once. Writes
/// nothing.
pub(super) struct Reserve(pub(super) usize);

impl Render for Reserve {
    fn render_to(&self, out: &mut String) {
        out.reserve(self.0);
    }
}

#[cfg(test)]
mod tests {
    use maud::html;

    /// What the hand-written escape of the pages did, a template does: markup in a value is
    /// text, in an element and in an attribute.
    #[test]
    fn escapes_markup() {
        let value = "<a href='x'>&\"</a>";
        let page = super::document(value, None, html! {}, html! { p title=(value) { (value) } })
            .into_string();
        let escaped = "&lt;a href='x'&gt;&amp;&quot;&lt;/a&gt;";
        assert!(
            page.contains(&format!("<title>{escaped}</title>")),
            "{page}"
        );
        assert!(
            page.contains(&format!("<p title=\"{escaped}\">{escaped}</p>")),
            "{page}"
        );
        assert!(!page.contains("<a href"), "{page}");
    }
}
