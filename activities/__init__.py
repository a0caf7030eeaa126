"""Every side effect of a case, one module per feature (`recovery`, `support`, `lifecycle`):
thin adapters that call the feature's service and turn its refusals into the
`ApplicationError` types the workflows match on."""
