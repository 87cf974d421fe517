#!/usr/bin/env python3
"""The seeds' three operations on the demo tenant, through stubs generated with grpcio-tools.

A user of its own, python-client@contoso.com (put into the directory with UpsertUser, as a
directory sync would), gets the Direct Routing number +14255388801, changes it for
+14255388802, and gives it back; in between, assigning that number to Jack is refused, and the
refusal's gRPC code and google.rpc.ErrorInfo reason are read from the status details. The user
and the numbers appear nowhere in the README walkthrough (nor in the Node client), and the run
ends with the user holding no number, so it runs again and again on the same server, before or
after the walkthrough.

Reads NUMBERS_SERVER (default 127.0.0.1:50051) and NUMBERS_TOKEN (an admin token of the demo
tenant: `cargo run -q -- token --tenant contoso --role admin`). Exits 1 when any answer differs
from what it expects. Run `python generate.py` first.
"""

import os
import sys

import grpc
from google.rpc import error_details_pb2, status_pb2

from generated.numbers.v1 import (
    number_management_pb2 as api,
    number_management_pb2_grpc as api_grpc,
    phone_number_pb2 as pn,
    user_pb2,
)

USER = "python-client@contoso.com"
OTHER_USER = "jack@contoso.com"
FIRST = "+14255388801"
SECOND = "+14255388802"
# Every call gives up after this long rather than hang a CI run.
DEADLINE_SECONDS = 10

failures = []


def expect(what: str, actual, wanted) -> None:
    """Records a difference between an answer and what the scenario expects."""
    if actual != wanted:
        failures.append(f"{what}: expected {wanted!r}, got {actual!r}")


def error_info(error: grpc.RpcError):
    """The google.rpc.ErrorInfo in the error's grpc-status-details-bin trailer, if any."""
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                return info
    return None


def main() -> int:
    server = os.environ.get("NUMBERS_SERVER", "127.0.0.1:50051")
    token = os.environ.get("NUMBERS_TOKEN")
    if not token:
        print(
            "set NUMBERS_TOKEN: cargo run -q -- token --tenant contoso --role admin",
            file=sys.stderr,
        )
        return 2
    metadata = [("authorization", f"Bearer {token}")]
    with grpc.insecure_channel(server) as channel:
        stub = api_grpc.NumberManagementStub(channel)

        def call(method, request):
            return method(request, metadata=metadata, timeout=DEADLINE_SECONDS)

        # The user, licensed for a Direct Routing number; an upsert, so every run may make it.
        user = user_pb2.User(
            user_principal_name=USER,
            display_name="Python Client",
            usage_location="US",
            licenses=[user_pb2.User.PHONE_SYSTEM],
        )
        call(stub.UpsertUser, api.UpsertUserRequest(user=user))
        # A run stopped half-way may have left the user a number: start from none, without a
        # block (block_days 0) and without an email.
        leftover = call(
            stub.RemovePhoneNumber,
            api.RemovePhoneNumberRequest(
                identity=USER, remove_all=True, block_days=0, notify_user=False
            ),
        )
        if leftover.phone_numbers:
            left = [n.phone_number for n in leftover.phone_numbers]
            print(f"cleared what an earlier run left: {left}")

        assigned = call(
            stub.AssignPhoneNumber,
            api.AssignPhoneNumberRequest(
                identity=USER,
                phone_number=FIRST,
                phone_number_type=pn.DIRECT_ROUTING,
                notify_user=False,
            ),
        )
        number = assigned.phone_number
        print(
            f"assigned {number.phone_number} to {number.assigned_to_user_principal_name}: "
            f"{pn.AssignmentCategory.Name(number.assignment_category)}, "
            f"{pn.ActivationState.Name(number.activation_state)}, "
            f"enterprise voice {'on' if assigned.user.enterprise_voice_enabled else 'off'}"
        )
        expect("assigned number", number.phone_number, FIRST)
        expect("assigned to", number.assigned_to_user_principal_name, USER)
        expect(
            "assignment category", pn.AssignmentCategory.Name(number.assignment_category), "PRIMARY"
        )
        expect("activation state", pn.ActivationState.Name(number.activation_state), "ACTIVATED")
        expect("enterprise voice after assigning", assigned.user.enterprise_voice_enabled, True)
        expect("the user's numbers after assigning", list(assigned.user.phone_numbers), [FIRST])

        # A number has one holder: giving the user's number to Jack is refused, and the reason is
        # for programs to read in the ErrorInfo, not in the message.
        try:
            call(
                stub.AssignPhoneNumber,
                api.AssignPhoneNumberRequest(identity=OTHER_USER, phone_number=FIRST),
            )
            failures.append(f"assigning {FIRST} to {OTHER_USER} succeeded; it is {USER}'s")
        except grpc.RpcError as error:
            info = error_info(error)
            reason = info.reason if info else None
            print(f"refused as expected: {error.code().name} {reason}: {error.details()}")
            expect("code of the refusal", error.code().name, "FAILED_PRECONDITION")
            expect("ErrorInfo.reason of the refusal", reason, "NUMBER_ALREADY_ASSIGNED")
            expect("ErrorInfo.domain of the refusal", info.domain if info else None, "numbers.v1")

        changed = call(
            stub.ChangePhoneNumber,
            api.ChangePhoneNumberRequest(
                identity=USER,
                phone_number=SECOND,
                phone_number_type=pn.DIRECT_ROUTING,
                notify_user=False,
            ),
        )
        print(
            f"changed {changed.previous_phone_number.phone_number} "
            f"({pn.AssignmentStatus.Name(changed.previous_phone_number.assignment_status)}) "
            f"for {changed.phone_number.phone_number}; "
            f"{USER} holds {list(changed.user.phone_numbers)}"
        )
        expect("previous number", changed.previous_phone_number.phone_number, FIRST)
        expect(
            "previous number's status",
            pn.AssignmentStatus.Name(changed.previous_phone_number.assignment_status),
            "UNASSIGNED",
        )
        expect("new number", changed.phone_number.phone_number, SECOND)
        expect("new number's holder", changed.phone_number.assigned_to_user_principal_name, USER)
        expect("the user's numbers after changing", list(changed.user.phone_numbers), [SECOND])

        removed = call(
            stub.RemovePhoneNumber,
            api.RemovePhoneNumberRequest(
                identity=USER, phone_number=SECOND, block_days=0, notify_user=False
            ),
        )
        statuses = [
            (n.phone_number, pn.AssignmentStatus.Name(n.assignment_status))
            for n in removed.phone_numbers
        ]
        print(
            f"removed {statuses} from {removed.user.user_principal_name}; enterprise voice "
            f"{'on' if removed.user.enterprise_voice_enabled else 'off'}"
        )
        expect("removed numbers", statuses, [(SECOND, "UNASSIGNED")])
        expect("the user's numbers after removing", list(removed.user.phone_numbers), [])
        expect("enterprise voice after removing", removed.user.enterprise_voice_enabled, False)

    if failures:
        print("the Python client saw answers it did not expect:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    print("python client: assign, change and remove worked as expected")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except grpc.RpcError as error:
        # An unexpected refusal: say which, with its reason, and fail.
        info = error_info(error)
        reason = info.reason if info else ""
        print(f"unexpected error: {error.code().name} {reason}: {error.details()}", file=sys.stderr)
        sys.exit(1)
