"""Getting a message to a person: email over SMTP, SMS through a provider."""
