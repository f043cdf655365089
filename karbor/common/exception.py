"""Exceptions that carry their HTTP status, so one fault handler renders them all.

Messages here are what users read: they name the field or object at fault.
"""

from __future__ import annotations


class KarborException(Exception):
    code = 500
    message = "An unknown exception occurred."
    headers: dict[str, str] = {}

    def __init__(self, message: str | None = None, **kwargs):
        self.kwargs = kwargs
        if message is None:
            try:
                message = self.message % kwargs
            except (KeyError, TypeError):
                message = self.message
        self.msg = message
        super().__init__(message)


class Invalid(KarborException):
    code = 400
    message = "Unacceptable parameters."


class InvalidInput(Invalid):
    message = "Invalid input received: %(reason)s"


class ValidationError(Invalid):
    message = "%(detail)s"


class MalformedRequestBody(Invalid):
    message = "Malformed request body: %(reason)s"


class InvalidPlan(Invalid):
    message = "Invalid plan: %(reason)s"


class NotAuthorized(KarborException):
    code = 403
    message = "Not authorized."


class PolicyNotAuthorized(NotAuthorized):
    message = "Policy doesn't allow %(action)s to be performed."


class AccessCheckpointNotAllowed(NotAuthorized):
    message = "Access checkpoint %(checkpoint_id)s is not allowed"


class NotAuthenticated(KarborException):
    code = 401
    message = "Authentication required."


class NotFound(KarborException):
    code = 404
    message = "Resource could not be found."


class PlanNotFound(NotFound):
    message = "Plan %(plan_id)s could not be found."


class ProviderNotFound(NotFound):
    message = "Provider %(provider_id)s could not be found."


class CheckpointNotFound(NotFound):
    message = "Checkpoint %(checkpoint_id)s could not be found."


class RestoreNotFound(NotFound):
    message = "Restore %(restore_id)s could not be found."


class VerificationNotFound(NotFound):
    message = "Verification %(verification_id)s could not be found."


class OperationLogNotFound(NotFound):
    message = "Operation log %(operation_log_id)s could not be found."


class TriggerNotFound(NotFound):
    message = "Trigger %(id)s could not be found."


class ScheduledOperationNotFound(NotFound):
    message = "Scheduled Operation %(id)s could not be found."


class ServiceNotFound(NotFound):
    message = "Service %(service_id)s could not be found."


class ProtectableTypeNotFound(NotFound):
    message = "Protectable type %(protectable_type)s could not be found."


class ProtectableResourceNotFound(NotFound):
    message = ("The resource %(resource_id)s of type %(resource_type)s could not be "
               "found: %(reason)s")


class Conflict(KarborException):
    code = 409
    message = "The request conflicts with the current state of the resource."


class CheckpointNotBeDeleted(Conflict):
    message = "The checkpoint %(checkpoint_id)s can not be deleted: its status is %(status)s."


class CheckpointNotBeReset(Conflict):
    message = "The checkpoint %(checkpoint_id)s can not be reset: its status is %(status)s."


class CheckpointNotAvailable(Conflict):
    message = ("The checkpoint %(checkpoint_id)s is %(status)s; only an available "
               "checkpoint can be %(action)s.")


class FailedDependency(KarborException):
    code = 424
    message = "%(reason)s"


class QuotaError(KarborException):
    code = 413
    message = "Quota exceeded: %(reason)s"
    headers = {"Retry-After": "0"}


class PlanLimitExceeded(QuotaError):
    message = "Maximum number of plans allowed (%(allowed)d) exceeded"


class CheckpointLimitExceeded(QuotaError):
    message = "Maximum number of checkpoints allowed (%(allowed)d) exceeded"


class ServiceUnavailable(KarborException):
    code = 503
    message = "%(reason)s"


class ProtectionPluginNotFound(KarborException):
    code = 400
    message = "Protection Plugin for %(type)s could not be found."


class BankError(KarborException):
    message = "Bank error: %(reason)s"


class BankFull(BankError):
    """The bank's storage has no room left: retrying cannot help, freeing space can."""

    message = "Bank %(bank)s is full: no space left on device (writing %(key)s)."


class BankObjectNotFound(BankError):
    code = 404
    message = "Bank object %(key)s could not be found."


class InvalidBankKey(BankError):
    code = 400
    message = "Invalid bank key %(key)s: %(reason)s"


class ListProtectableResourceFailed(KarborException):
    message = "List protectable resources of type %(type)s failed: %(reason)s"


class ProtectableResourceInvalidStatus(KarborException):
    code = 409
    message = ("The resource %(resource_id)s of type %(resource_type)s has an invalid "
               "status: %(status)s")
