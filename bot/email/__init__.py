"""The email newsletter: subscribers' addresses, and (to come) sending over SMTP, the web flows and bounces."""
