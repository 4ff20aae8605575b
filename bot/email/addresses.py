"""Subscribers' addresses checked with email-validator: the syntax always (internationalised addresses included),
the domain's MX only when asked (a DNS lookup, off by default)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


class AddressError(ValueError):
    """An address that cannot receive mail, and why (email-validator's words)."""


def checked_address(address: str, check_mx: bool = False) -> str:
    """``address`` as it should be stored (the domain normalised, the local part as written)."""
    text = address.strip()
    if "\r" in text or "\n" in text:
        raise AddressError("an address cannot hold a line break")
    try:
        valid = validate_email(text, check_deliverability=check_mx)
    except EmailNotValidError as error:
        raise AddressError(str(error)) from None
    return str(valid.normalized)
