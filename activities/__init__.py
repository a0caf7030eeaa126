"""Every side effect of a case: database writes, email, SMS."""
