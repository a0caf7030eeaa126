"""Which LDAP or Active Directory accounts are bound to a second factor: most directories keep
the factor itself in another system (an MFA server, an identity provider) and mark the account
by an attribute or a group. Reclaim reads the mark, never the factor: a marked account proves
one of the recovery codes Reclaim keeps for it (`reclaim.directory.kept_codes`), or goes
through a support claim.

- `RECLAIM_LDAP_MFA_ATTRIBUTE` (and `RECLAIM_LDAP_MFA_VALUE`): the entry's attribute holds the
  value (any value when none is set), compared without regard to case. On Active Directory,
  `memberOf` and a group's DN; on OpenLDAP with the memberof overlay, the same.
- `RECLAIM_LDAP_MFA_GROUP`: a group's DN whose `member` or `uniqueMember` names the entry;
  on Active Directory, nested membership counts (the LDAP_MATCHING_RULE_IN_CHAIN rule).
"""

from __future__ import annotations

from ldap3 import BASE, Connection
from ldap3.utils.conv import escape_filter_chars

from reclaim.settings import Settings

# Active Directory's matching rule that follows nested group membership.
IN_CHAIN = "1.2.840.113556.1.4.1941"


class MfaMarks:
    def __init__(self, settings: Settings) -> None:
        self.attribute = (settings.ldap_mfa_attribute or "").strip() or None
        self.value = (settings.ldap_mfa_value or "").strip().lower() or None
        self.group = (settings.ldap_mfa_group or "").strip() or None

    @property
    def configured(self) -> bool:
        return self.attribute is not None or self.group is not None

    @property
    def attributes(self) -> list[str]:
        """What a user entry's read must fetch besides the rest."""
        return [self.attribute] if self.attribute else []

    def by_attribute(self, attrs: dict[str, list[bytes]]) -> bool:
        """`attrs`: the entry's raw attributes, by lower-case name."""
        if self.attribute is None:
            return False
        values = [
            v.decode("utf-8", "replace").strip().lower()
            for v in attrs.get(self.attribute.lower(), [])
        ]
        values = [v for v in values if v]
        return bool(values) if self.value is None else self.value in values

    def in_group(self, connection: Connection, dn: str, *, ad: bool) -> bool:
        """Whether the entry `dn` is a member of the group (one base search)."""
        assert self.group is not None
        member = escape_filter_chars(dn)
        if ad:  # the user's entry, searched with the rule that follows nested groups
            base, condition = dn, f"(memberOf:{IN_CHAIN}:={escape_filter_chars(self.group)})"
        else:
            base, condition = self.group, f"(|(member={member})(uniqueMember={member}))"
        connection.search(base, condition, BASE, attributes=[], size_limit=1)
        return any(e.get("type") == "searchResEntry" for e in connection.response or [])
