//! The boxed future the platform's traits return (subscribers, executors, jobs), so they can
//! be held as trait objects.

use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
