"""SQLAlchemy models, split by noun; importing this package registers them all."""

from app.models.embedding import ConnectLink, IdempotencyKey
from app.models.facilities import ApiToken, Facility, Invitation, Membership, Role, User
from app.models.integrations import Account, CallLog, Grant, Integration, OAuthClient, OAuthState
from app.models.schedules import Schedule
from app.models.script_store import StoreEntry
from app.models.scripts import Run, Script
from app.models.sessions import UserSession
from app.models.triggers import TriggerDelivery, WebhookTrigger
from app.models.versions import ScriptVersion
from app.models.webhooks import WebhookDelivery, WebhookEndpoint

__all__ = [
    "Account",
    "ApiToken",
    "CallLog",
    "ConnectLink",
    "Facility",
    "Grant",
    "IdempotencyKey",
    "Integration",
    "Invitation",
    "Membership",
    "OAuthClient",
    "OAuthState",
    "Role",
    "Run",
    "Schedule",
    "Script",
    "ScriptVersion",
    "StoreEntry",
    "TriggerDelivery",
    "User",
    "UserSession",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookTrigger",
]
