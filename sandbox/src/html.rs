//! HTML helpers of the stand-ins' pages.

/// Text made safe inside HTML (elements and quoted attributes).
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A messenger stand-in's page (the recipient's phone, a chat), marked as a test stand of `stand`.
pub(crate) fn phone_page(stand: &str, title: &str, body: &str) -> axum::response::Html<String> {
    axum::response::Html(format!(
        r#"<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="icon" href="data:,">
<style>
body {{ font-family: system-ui, sans-serif; max-width: 26rem; margin: 1rem auto; padding: 0 1rem; color: #1a1a1a; background: #f4f5f7; }}
.test {{ background: #fff3cd; border: 1px solid #b58105; padding: .5rem .75rem; border-radius: .25rem; }}
.msg {{ background: #fff; border-radius: .75rem; padding: .75rem; margin: .75rem 0; box-shadow: 0 1px 2px #0002; white-space: pre-wrap; overflow-wrap: anywhere; }}
.msg time {{ display: block; color: #555; font-size: .8rem; margin-top: .25rem; }}
.meta {{ color: #555; font-size: .85rem; }}
.buttons {{ display: flex; flex-wrap: wrap; gap: .5rem; margin-top: .5rem; }}
button, .link {{ font-size: 1rem; padding: .5rem .75rem; border-radius: .5rem; border: 1px solid #0b4f94; background: #fff; color: #0b4f94; cursor: pointer; text-decoration: none; display: inline-block; margin-top: .5rem; }}
label {{ display: block; margin: .5rem 0 .25rem; }}
input {{ font-size: 1rem; padding: .4rem; width: 100%; box-sizing: border-box; }}
</style></head>
<body><main>
<h1>{title}</h1>
<p class="test" role="note">Тестовый стенд {stand} (песочница Vizit): сообщения никуда не уходят.</p>
{body}
</main></body></html>"#
    ))
}
