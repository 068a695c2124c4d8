"""Identity: accounts, sessions (access JWT + rotating refresh tokens), one-time tokens, audit."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aws_lambda_powertools import Logger
from pynamodb.exceptions import DeleteError, DoesNotExist, TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from kumo.core import abuse_limits as limits
from kumo.core import aws, clock, dynamo, rate_limit
from kumo.core.config import get_settings
from kumo.core.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from kumo.core.ids import new_id
from kumo.core.pagination import clamp_limit, decode_cursor, encode_cursor
from kumo.core.rate_limit import Limit
from kumo.identity import passwords, tokens
from kumo.identity.errors import AccountDisabled, EmailNotVerified, InvalidToken
from kumo.identity.models import (
    USERS_PARTITION,
    AuditEventModel,
    EmailClaimModel,
    OneTimeTokenModel,
    RateCounterModel,
    RefreshTokenModel,
    TokenFamilyModel,
    UserModel,
    audit_key,
    email_key,
    family_sort_key,
    one_time_key,
    refresh_key,
    user_key,
)
from kumo.tasks import service as tasks

logger = Logger(child=True)

VERIFY_TOKEN_SECONDS = 24 * 3600
RESET_TOKEN_SECONDS = 3600
AUDIT_RETENTION_SECONDS = 400 * 24 * 3600
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class Session:
    user: UserModel
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int


# --- accounts ---------------------------------------------------------------------------


def get_user(user_id: str) -> UserModel:
    user = dynamo.get_or_none(UserModel, user_key(user_id), "PROFILE")
    if user is None:
        raise NotFound("No such user.")
    return user


def find_user_by_email(email: str) -> UserModel | None:
    claim = dynamo.get_or_none(EmailClaimModel, email_key(email), "EMAIL")
    if claim is None:
        return None
    return dynamo.get_or_none(UserModel, user_key(claim.user_id), "PROFILE")


def register(
    *, email: str, password: str, display_name: str, role: str = "user", verified: bool = False
) -> UserModel:
    passwords.check_policy(password, email)
    user_id = new_id()
    created = clock.utc_iso()
    user = UserModel(
        pk=user_key(user_id),
        gsi1sk=f"{created}#{user_id}",
        user_id=user_id,
        email=email,
        display_name=display_name,
        password_hash=passwords.hash_password(password),
        role=role,
        email_verified=verified,
        created_at=created,
        updated_at=created,
    )
    claim = EmailClaimModel(pk=email_key(email), user_id=user_id)
    try:
        with TransactWrite(connection=aws.dynamodb()) as transaction:
            # The claim item makes the address unique; the user item cannot exist yet.
            transaction.save(claim, condition=EmailClaimModel.pk.does_not_exist())
            transaction.save(user, condition=UserModel.pk.does_not_exist())
    except TransactWriteError as error:
        raise Conflict("An account with this e-mail address already exists.") from error
    logger.info("user registered", user_id=user_id)
    if not verified:
        _send_one_time_mail(user, purpose="VERIFY", template="verify_email")
    return user


def sign_up(*, email: str, password: str, display_name: str, source_ip: str | None) -> UserModel:
    """POST /auth/register: `register`, within the source's sign-up allowance (a sign-up
    mails the address). A refused password or a taken address costs no allowance."""
    passwords.check_policy(password, email)
    spent = rate_limit.spend(RateCounterModel, limits.REGISTER_PER_SOURCE, source_ip or "unknown")
    try:
        return register(email=email, password=password, display_name=display_name)
    except Conflict:
        spent.refund()
        raise


def update_me(
    user_id: str,
    *,
    display_name: str | None,
    current_password: str | None,
    new_password: str | None,
    avatar: tuple[str | None] | None = None,
) -> UserModel:
    """`avatar` is (media id,) to set one, (None,) to remove it, None to leave it; the media
    context has checked the id (the handler asks it)."""
    user = get_user(user_id)
    actions: list[Action] = [UserModel.updated_at.set(clock.utc_iso())]
    if display_name is not None:
        actions.append(UserModel.display_name.set(display_name))
    if avatar is not None:
        (media_id,) = avatar
        actions.append(
            UserModel.avatar_media_id.set(media_id)
            if media_id is not None
            else UserModel.avatar_media_id.remove()
        )
    if new_password is not None:
        if current_password is None or not passwords.verify_password(
            user.password_hash, current_password
        ):
            raise ValidationFailed(
                "Changing the password needs the current password.",
                errors=[{"field": "current_password", "message": "is missing or wrong"}],
            )
        passwords.check_policy(new_password, user.email, field="new_password")
        actions.append(UserModel.password_hash.set(passwords.hash_password(new_password)))
        actions.append(UserModel.session_epoch.add(1))
    user.update(actions=actions)
    if new_password is not None:
        revoke_all_sessions(user_id, reason="password-changed")
        record_audit("password.changed", actor_id=user_id, subject_id=user_id)
    return user


# --- one-time tokens (verification, reset) --------------------------------------------------


def _send_one_time_mail(user: UserModel, *, purpose: str, template: str) -> None:
    raw = tokens.new_opaque_token()
    seconds = VERIFY_TOKEN_SECONDS if purpose == "VERIFY" else RESET_TOKEN_SECONDS
    OneTimeTokenModel(
        pk=one_time_key(tokens.hash_token(raw)),
        sk=purpose,
        user_id=user.user_id,
        expires_at=int(clock.now()) + seconds,
    ).save()
    page = "verify-email" if purpose == "VERIFY" else "reset-password"
    tasks.enqueue_email(
        to=user.email,
        template=template,
        params={
            "display_name": user.display_name,
            "token": raw,
            "link": f"{get_settings().app_url}/auth/{page}?token={raw}",
        },
    )


def _find_one_time_token(raw: str, purpose: str) -> OneTimeTokenModel:
    """A live token, not yet spent; expired ones are left for the table's TTL to remove."""
    try:
        item = OneTimeTokenModel.get(one_time_key(tokens.hash_token(raw)), purpose)
    except DoesNotExist as error:
        raise InvalidToken("The token is unknown, already used or expired.") from error
    if item.expires_at <= clock.now():
        raise InvalidToken("The token is unknown, already used or expired.")
    return item


def _spend_one_time_token(item: OneTimeTokenModel) -> str:
    """Spend a token once; answers the user id it was issued to."""
    try:
        # The conditional delete is what makes the token single use under concurrency.
        item.delete(condition=OneTimeTokenModel.pk.exists())
    except DeleteError as error:
        raise InvalidToken("The token is unknown, already used or expired.") from error
    return item.user_id


def _consume_one_time_token(raw: str, purpose: str) -> str:
    return _spend_one_time_token(_find_one_time_token(raw, purpose))


def verify_email(raw_token: str) -> UserModel:
    user = get_user(_consume_one_time_token(raw_token, "VERIFY"))
    user.update(
        actions=[UserModel.email_verified.set(True), UserModel.updated_at.set(clock.utc_iso())]
    )
    record_audit("email.verified", actor_id=user.user_id, subject_id=user.user_id)
    return user


def _spend_mail_allowance(
    address: Limit, per_source: Limit, email: str, source: str | None
) -> None:
    # Spent before the account is looked up, so the answer is the same for every address.
    rate_limit.spend_all(RateCounterModel, [(address, email), (per_source, source or "unknown")])


def resend_verification(email: str, *, source_ip: str | None) -> None:
    _spend_mail_allowance(limits.RESEND_PER_ADDRESS, limits.RESEND_PER_SOURCE, email, source_ip)
    user = find_user_by_email(email)
    if user is not None and not user.email_verified and user.active:
        _send_one_time_mail(user, purpose="VERIFY", template="verify_email")


def forgot_password(email: str, *, source_ip: str | None) -> None:
    """Always looks the same to the caller, so it cannot probe which addresses exist."""
    _spend_mail_allowance(limits.FORGOT_PER_ADDRESS, limits.FORGOT_PER_SOURCE, email, source_ip)
    user = find_user_by_email(email)
    if user is not None and user.active:
        _send_one_time_mail(user, purpose="RESET", template="password_reset")


def reset_password(raw_token: str, new_password: str) -> None:
    token = _find_one_time_token(raw_token, "RESET")
    user = get_user(token.user_id)
    # Checked before the token is spent: a refused password must not cost the user the link.
    passwords.check_policy(new_password, user.email, field="new_password")
    _spend_one_time_token(token)
    user.update(
        actions=[
            UserModel.password_hash.set(passwords.hash_password(new_password)),
            UserModel.updated_at.set(clock.utc_iso()),
            UserModel.session_epoch.add(1),
        ]
    )
    revoke_all_sessions(user.user_id, reason="password-reset")
    record_audit("password.reset", actor_id=user.user_id, subject_id=user.user_id)


# --- sessions -----------------------------------------------------------------------------


def _refresh_seconds(remember: bool) -> int:
    settings = get_settings()
    return settings.refresh_token_remember_seconds if remember else settings.refresh_token_seconds


def _issue_session(user: UserModel, *, remember: bool, family_id: str | None = None) -> Session:
    seconds = _refresh_seconds(remember)
    expires_at = int(clock.now()) + seconds
    if family_id is None:
        family_id = new_id()
        TokenFamilyModel(
            pk=user_key(user.user_id),
            sk=family_sort_key(family_id),
            family_id=family_id,
            created_at=clock.utc_iso(),
            expires_at=expires_at,
        ).save()
    else:
        TokenFamilyModel(pk=user_key(user.user_id), sk=family_sort_key(family_id)).update(
            actions=[TokenFamilyModel.expires_at.set(expires_at)]
        )
    raw = tokens.new_opaque_token()
    RefreshTokenModel(
        pk=refresh_key(tokens.hash_token(raw)),
        user_id=user.user_id,
        family_id=family_id,
        remember=remember,
        expires_at=expires_at,
    ).save()
    return Session(
        user=user,
        access_token=tokens.issue_access_token(
            user_id=user.user_id,
            email=user.email,
            role=user.role,
            session_epoch=int(user.session_epoch),
        ),
        refresh_token=raw,
        expires_in=get_settings().access_token_seconds,
        refresh_expires_in=seconds,
    )


def _login_limits(email: str, source: str) -> list[tuple[Limit, str]]:
    # In this order: a source over its own limits is refused before it can spend the
    # account-wide allowance that slows down everyone else's guesses at the account.
    return [
        (limits.LOGIN_PER_SOURCE, source),
        (limits.LOGIN_PER_ACCOUNT_SOURCE, f"{email} {source}"),
        (limits.LOGIN_PER_ACCOUNT, email),
    ]


def login(*, email: str, password: str, remember: bool, source_ip: str | None) -> Session:
    """Sign in. The limits are spent before the password is checked (one conditional write
    each, for unknown addresses alike), so concurrent guesses check at most the limit's
    number of passwords; a right password hands the units back (ADR 24)."""
    source = source_ip or "unknown"
    try:
        spent = rate_limit.spend_all(RateCounterModel, _login_limits(email, source))
    except rate_limit.RateLimited as error:
        record_audit(
            "login.throttled", source_ip=source_ip, detail={"limit": str(error.extra["limit"])}
        )
        raise
    user = find_user_by_email(email)
    if user is None:
        passwords.verify_password(passwords.dummy_hash(), password)
        record_audit("login.failed", source_ip=source_ip, detail={"reason": "unknown-account"})
        raise Unauthorized("The e-mail address or the password is wrong.")
    if not passwords.verify_password(user.password_hash, password):
        record_audit(
            "login.failed",
            subject_id=user.user_id,
            source_ip=source_ip,
            detail={"reason": "wrong-password"},
        )
        raise Unauthorized("The e-mail address or the password is wrong.")
    rate_limit.refund_all(spent)
    if not user.active:
        record_audit("login.failed", subject_id=user.user_id, detail={"reason": "deactivated"})
        raise AccountDisabled("This account is deactivated.")
    if not user.email_verified:
        raise EmailNotVerified("Confirm your e-mail address before signing in.")
    if passwords.needs_rehash(user.password_hash):
        user.update(actions=[UserModel.password_hash.set(passwords.hash_password(password))])
    record_audit(
        "login.succeeded", actor_id=user.user_id, subject_id=user.user_id, source_ip=source_ip
    )
    return _issue_session(user, remember=remember)


def refresh_session(raw_token: str) -> Session:
    try:
        token = RefreshTokenModel.get(refresh_key(tokens.hash_token(raw_token)), "REFRESH")
    except DoesNotExist as error:
        raise Unauthorized("The refresh token is invalid or expired.") from error
    family = _get_family(token.user_id, token.family_id)
    if token.expires_at <= clock.now() or family is None or family.revoked:
        raise Unauthorized("The refresh token is invalid or expired.")
    try:
        # Conditional: of two concurrent uses of one token, exactly one rotates it.
        token.update(
            actions=[RefreshTokenModel.rotated.set(True)],
            condition=RefreshTokenModel.rotated == False,  # noqa: E712 (an expression, not a test)
        )
    except UpdateError as error:
        _revoke_family(family, reason="reuse-detected")
        record_audit(
            "token.reuse_detected", subject_id=token.user_id, detail={"family_id": token.family_id}
        )
        raise Unauthorized(
            "This refresh token was already used; every session it belonged to is revoked."
        ) from error
    user = get_user(token.user_id)
    if not user.active:
        _revoke_family(family, reason="deactivated")
        raise AccountDisabled("This account is deactivated.")
    return _issue_session(user, remember=token.remember, family_id=token.family_id)


def logout(raw_token: str | None) -> None:
    """Idempotent: an unknown or already revoked token still logs out."""
    if not raw_token:
        return
    try:
        token = RefreshTokenModel.get(refresh_key(tokens.hash_token(raw_token)), "REFRESH")
    except DoesNotExist:
        return
    family = _get_family(token.user_id, token.family_id)
    if family is not None:
        _revoke_family(family, reason="logout")


def _get_family(user_id: str, family_id: str) -> TokenFamilyModel | None:
    return dynamo.get_or_none(TokenFamilyModel, user_key(user_id), family_sort_key(family_id))


def _revoke_family(family: TokenFamilyModel, *, reason: str) -> None:
    family.update(
        actions=[TokenFamilyModel.revoked.set(True), TokenFamilyModel.revoked_reason.set(reason)]
    )


def revoke_all_sessions(user_id: str, *, reason: str) -> None:
    for family in TokenFamilyModel.query(
        user_key(user_id), TokenFamilyModel.sk.startswith("FAMILY#")
    ):
        if not family.revoked:
            _revoke_family(family, reason=reason)


# --- administration -----------------------------------------------------------------------


def list_users(*, limit: int | None, cursor: str | None) -> tuple[list[UserModel], str | None]:
    results = UserModel.by_created.query(
        USERS_PARTITION,
        scan_index_forward=False,
        limit=clamp_limit(limit),
        last_evaluated_key=decode_cursor(cursor, partition=("gsi1pk", USERS_PARTITION)),
    )
    users = list(results)
    return users, encode_cursor(results.last_evaluated_key)


def admin_update_user(
    *, actor_id: str, user_id: str, role: str | None, active: bool | None
) -> UserModel:
    if user_id == actor_id:
        raise Conflict("Admins cannot change their own role or deactivate themselves.")
    user = get_user(user_id)
    actions: list[Action] = [UserModel.updated_at.set(clock.utc_iso())]
    if role is not None and role != user.role:
        actions.append(UserModel.role.set(role))
        record_audit(
            "user.role_changed",
            actor_id=actor_id,
            subject_id=user_id,
            detail={"from": user.role, "to": role},
        )
    if active is not None and active != user.active:
        actions.append(UserModel.active.set(active))
        record_audit(
            "user.activated" if active else "user.deactivated",
            actor_id=actor_id,
            subject_id=user_id,
        )
    if len(actions) > 1:  # the role or the status changes, not only `updated_at`
        # Access tokens already issued end within the authorizer's cache time (ADR 27).
        actions.append(UserModel.session_epoch.add(1))
    user.update(actions=actions)
    if active is False:
        revoke_all_sessions(user_id, reason="deactivated")
    return user


def record_audit(
    event: str,
    *,
    actor_id: str | None = None,
    subject_id: str | None = None,
    source_ip: str | None = None,
    detail: dict[str, str] | None = None,
) -> None:
    moment = clock.now()
    at = clock.utc_iso(moment)
    AuditEventModel(
        pk=audit_key(at[:10]),
        sk=f"{at}#{new_id()}",
        event=event,
        at=at,
        actor_id=actor_id,
        subject_id=subject_id,
        source_ip=source_ip,
        detail=detail or {},
        expires_at=int(moment) + AUDIT_RETENTION_SECONDS,
    ).save()


def list_audit(
    *, day: str | None, limit: int | None, cursor: str | None
) -> tuple[list[AuditEventModel], str | None]:
    """One UTC day per partition, newest first; `day` defaults to today."""
    if day is None:
        day = clock.utc_iso()[:10]
    elif not _DAY.match(day):
        raise ValidationFailed(
            "day must be a date.", errors=[{"field": "day", "message": "use YYYY-MM-DD"}]
        )
    results = AuditEventModel.query(
        audit_key(day),
        scan_index_forward=False,
        limit=clamp_limit(limit),
        last_evaluated_key=decode_cursor(cursor, partition=("pk", audit_key(day))),
    )
    events = list(results)
    return events, encode_cursor(results.last_evaluated_key)
