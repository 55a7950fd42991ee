//! The root context: parses the plugin configuration once per VM and hands each HTTP stream
//! the validated [`Filter`] and the VM's metrics.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use tollgate_filter_core::metrics::Metrics;
use tollgate_filter_core::plugin::Filter;

use crate::http::HttpExchange;

/// One per VM.
#[derive(Default)]
pub struct TollgateRoot {
    filter: Option<Rc<Filter>>,
    metrics: Rc<RefCell<Metrics>>,
}

impl Context for TollgateRoot {}

impl RootContext for TollgateRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        match Filter::from_json(&config) {
            Ok(filter) => {
                self.filter = Some(Rc::new(filter));
                true
            }
            Err(e) => {
                let _ = proxy_wasm::hostcalls::log(LogLevel::Critical, &e.to_string());
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Envoy creates streams only after a successful on_configure.
        let filter = self.filter.clone()?;
        Some(Box::new(HttpExchange::new(filter, self.metrics.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
