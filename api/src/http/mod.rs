//! What every handler shares: [`ApiError`] as `application/problem+json` with a stable `code`,
//! extractors that answer with problems ([`Body`], [`Params`]), paging ([`Page`]), and reading
//! times, text and ids from requests. Imports no capability.

pub mod cookies;
pub mod error;
pub mod extract;
pub mod input;
pub mod paging;

pub use cookies::{cookie, same_origin, session_cookie, set_cookie};
pub use error::{ApiError, Problem};
pub use extract::{Body, MAX_BODY_BYTES, Params, bearer, client_ip, client_ip_behind};
pub use input::{escape_html, id, normalized_email, parse_time, text, time_range, to_rfc3339};
pub use paging::{Page, page};
