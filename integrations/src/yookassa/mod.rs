//! YooKassa API v3 (`shared/reference/integrations.md` §2, the OpenAPI document in
//! `sandbox/spec/`): payments with a 54-FZ receipt, capture and cancel, refunds, and the fiscal
//! data of receipts. Notifications are not signed: a receiver trusts one only after reading the
//! object back with [`Client::payment`] or [`Client::refund`].

mod client;
mod model;

pub use client::{Client, Error, Settings};
pub use model::{
    Amount, Cancellation, Confirmation, Customer, Item, Measure, NewPayment, NewRefund, Payment,
    PaymentMode, PaymentStatus, PaymentSubject, Receipt, ReceiptData, ReceiptLine, Refund,
    RefundStatus,
};
