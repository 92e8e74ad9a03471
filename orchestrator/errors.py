"""One exception tree for the whole project; edges map it to exit codes and HTTP answers."""

from __future__ import annotations


class CampaignError(Exception):
    """Base of every error the project raises on purpose."""


class UnreadableFileError(CampaignError):
    """A file could not be read at all (missing, permissions, not UTF-8 text)."""


class MissingFileError(UnreadableFileError):
    """The file does not exist."""


class ValidationError(CampaignError):
    """A campaign file does not validate; carries every diagnostic found."""

    def __init__(self, message: str, diagnostics: list[object] | None = None) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics or []


class TemplateRenderError(CampaignError):
    """A notification template failed at send time (undefined value, sandbox violation)."""


class PayloadTooLargeError(CampaignError):
    """A rendered notification is larger than a Web Push record can carry."""


class DeliveryError(CampaignError):
    """Something went wrong delivering a push message."""


class ConfigurationError(CampaignError):
    """The environment or configuration is missing or invalid."""


class UnknownCampaignError(CampaignError):
    """A campaign id that is not one, or names no file in the campaigns folder."""
