//! HTML escaping: everything this site echoes (field values, server replies, configuration) goes through
//! [`escape`], in text and in double-quoted attributes alike.

/// Escapes `&`, `<`, `>`, `"` and `'`, which is enough for text content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_characters_are_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
    }

    #[test]
    fn ordinary_french_text_is_unchanged() {
        let text = "Nid-de-poule devant l’école, 3 rue de l’Église\u{a0}!";
        assert_eq!(escape(text), text);
    }

    #[test]
    fn an_escaped_value_cannot_close_its_attribute() {
        let attribute = format!(r#"value="{}""#, escape(r#"" autofocus onfocus="alert(1)"#));
        assert_eq!(attribute.matches('"').count(), 2, "{attribute}");
    }
}
