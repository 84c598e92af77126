"""A client generated from /openapi.json by openapi-python-client, used as a client team would:
an admin creates an invite code, a new user signs up, joins the beta with it and analyses a
workflow, then finds the analysis in their history. Run by contract/run.sh with the generated
package `portico_client` on PYTHONPATH, PORTICO_URL and ADMIN_TOKEN set.
"""

import os
import sys
import uuid

from portico_client import AuthenticatedClient, Client
from portico_client.api.auth import get_auth_me, post_auth_signup
from portico_client.api.beta import get_beta_user_access, post_beta_join
from portico_client.api.beta_admin import post_admin_beta_invite_codes
from portico_client.api.workflows import get_workflows_analyses_by_id, get_workflows_history, post_workflows_analyze
from portico_client.models import (
    CodeLevel,
    CreateInviteCode,
    Error,
    InviteCodeRequest,
    PorticoMarketingAutomationWorkflow,
    SignupRequest,
)

URL = os.environ["PORTICO_URL"]
WELCOME = {
    "name": "Welcome series",
    "triggers": [{"id": "t1", "type": "form_submitted", "next": "s1"}],
    "steps": [
        {"id": "s1", "type": "send_email", "config": {"subject": "Hi", "unsubscribeLink": True}, "next": "s2"},
        {"id": "s2", "type": "wait", "config": {"duration": "P1D"}, "next": "s3"},
        {
            "id": "s3",
            "type": "if_else",
            "config": {"conditions": [{"field": "tag", "op": "eq", "value": "vip"}]},
            "branches": {"yes": "s4", "no": None},
        },
        {"id": "s4", "type": "webhook", "config": {"url": "https://hooks.example/welcome"}, "next": None},
    ],
}


def ok(response, status):
    """The parsed answer of a call that must have answered `status`."""
    assert response.status_code == status, f"{response.status_code}: {response.content!r}"
    assert not isinstance(response.parsed, Error), response.parsed
    assert response.parsed is not None, f"the client could not parse {response.content!r}"
    return response.parsed


def main():
    admin = AuthenticatedClient(base_url=URL, token=os.environ["ADMIN_TOKEN"])
    code = f"CLIENT_{uuid.uuid4().hex[:8].upper()}"
    created = ok(
        post_admin_beta_invite_codes.sync_detailed(
            client=admin, body=CreateInviteCode(access_level=CodeLevel.PREMIUM, max_uses=1, code=code)
        ),
        201,
    )
    assert created.data.code == code, created.data

    email = f"client-{uuid.uuid4().hex[:8]}@contract.test"
    issued = ok(
        post_auth_signup.sync_detailed(
            client=Client(base_url=URL), body=SignupRequest(email=email, password="a long client password")
        ),
        201,
    ).data
    user = AuthenticatedClient(base_url=URL, token=issued.access_token)
    me = ok(get_auth_me.sync_detailed(client=user), 200).data
    assert me.email == email, me

    before = ok(get_beta_user_access.sync_detailed(client=user), 200).data
    assert before.access_level.value == "NONE", before
    joined = ok(post_beta_join.sync_detailed(client=user, body=InviteCodeRequest(code=code.lower())), 200).data
    assert joined.access_level.value == "PREMIUM", joined
    # Joining again is idempotent: it does not spend the code's one use.
    again = ok(post_beta_join.sync_detailed(client=user, body=InviteCodeRequest(code=code)), 200).data
    assert again.access_level.value == "PREMIUM", again

    workflow = PorticoMarketingAutomationWorkflow.from_dict(WELCOME)
    analysis = ok(post_workflows_analyze.sync_detailed(client=user, body=workflow), 200).data
    assert 0 <= analysis.health_score <= 100, analysis
    assert analysis.stats.steps == 4 and analysis.stats.triggers == 1, analysis.stats
    found = ok(get_workflows_analyses_by_id.sync_detailed(client=user, id=analysis.analysis_id), 200).data
    assert found.health_score == analysis.health_score, found
    history = ok(get_workflows_history.sync_detailed(client=user), 200).data
    assert [item.analysis_id for item in history.items] == [analysis.analysis_id], history

    print(
        f"generated client: signed up {email}, joined the beta at {joined.access_level.value} with {code}, "
        f"analysed a workflow (health {analysis.health_score}, grade {analysis.grade}, "
        f"{len(analysis.issues)} findings) and found it in the history"
    )


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"generated client: {e}", file=sys.stderr)
        raise
