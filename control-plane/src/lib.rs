//! Tollgate's control plane (arrives with the control-plane issue).
