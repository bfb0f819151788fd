//! Clients of external systems and the jobs around them. Each speaks the vendor's documented
//! wire format (`shared/reference/integrations.md`); the tests run them against `vizit-sandbox`.

pub mod bitrix24;
