//! The request reader: model, stream flag, output cap and input estimate.
