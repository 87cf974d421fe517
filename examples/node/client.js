#!/usr/bin/env node
// The seeds' three operations on the demo tenant, through @grpc/grpc-js with the protos of
// ../../proto loaded at run time by @grpc/proto-loader (nothing generated).
//
// A user of its own, node-client@contoso.com (put into the directory with UpsertUser, as a
// directory sync would), gets the Direct Routing number +14255388811, changes it for
// +14255388812, and gives it back; in between, assigning that number to Jack is refused, and the
// refusal's gRPC code and google.rpc.ErrorInfo reason are decoded from the
// grpc-status-details-bin trailer with protobufjs. The user and the numbers appear nowhere in
// the README walkthrough (nor in the Python client), and the run ends with the user holding no
// number, so it runs again and again on the same server.
//
// Reads NUMBERS_SERVER (default 127.0.0.1:50051) and NUMBERS_TOKEN (an admin token of the demo
// tenant: `cargo run -q -- token --tenant contoso --role admin`). Exits 1 when any answer
// differs from what it expects.
'use strict';

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const PROTO = path.resolve(__dirname, '..', '..', 'proto');
const USER = 'node-client@contoso.com';
const OTHER_USER = 'jack@contoso.com';
const FIRST = '+14255388811';
const SECOND = '+14255388812';
// Every call gives up after this long rather than hang a CI run.
const DEADLINE_MS = 10_000;

// Field names as in the protos, enums as their names, unset fields as their defaults: answers
// read like the proto files and grpcurl's output.
const definition = protoLoader.loadSync('numbers/v1/number_management.proto', {
  includeDirs: [PROTO],
  keepCase: true,
  enums: String,
  longs: String,
  defaults: true,
});
const { NumberManagement } = grpc.loadPackageDefinition(definition).numbers.v1;

// google.rpc.Status and ErrorInfo, to decode the grpc-status-details-bin trailer.
const rpcTypes = new protobuf.Root();
rpcTypes.resolvePath = (_origin, target) => path.join(PROTO, target);
rpcTypes.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], {
  keepCase: true,
});
const Status = rpcTypes.lookupType('google.rpc.Status');
const ErrorInfo = rpcTypes.lookupType('google.rpc.ErrorInfo');

const failures = [];

// Records a difference between an answer and what the scenario expects.
function expect(what, actual, wanted) {
  if (JSON.stringify(actual) !== JSON.stringify(wanted)) {
    failures.push(`${what}: expected ${JSON.stringify(wanted)}, got ${JSON.stringify(actual)}`);
  }
}

// The google.rpc.ErrorInfo in a gRPC error's status details, or null.
function errorInfo(error) {
  const details = error.metadata ? error.metadata.get('grpc-status-details-bin') : [];
  for (const bytes of details) {
    const status = Status.decode(bytes);
    for (const any of status.details) {
      if (any.type_url.endsWith('/google.rpc.ErrorInfo')) {
        return ErrorInfo.decode(any.value);
      }
    }
  }
  return null;
}

function describe(error) {
  const info = errorInfo(error);
  return `${grpc.status[error.code]} ${info ? info.reason : ''}: ${error.details}`;
}

async function main() {
  const server = process.env.NUMBERS_SERVER || '127.0.0.1:50051';
  const token = process.env.NUMBERS_TOKEN;
  if (!token) {
    console.error('set NUMBERS_TOKEN: cargo run -q -- token --tenant contoso --role admin');
    return 2;
  }
  const client = new NumberManagement(server, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.add('authorization', `Bearer ${token}`);
  const call = (method, request) =>
    new Promise((resolve, reject) => {
      client[method](request, metadata, { deadline: Date.now() + DEADLINE_MS }, (error, answer) =>
        error ? reject(error) : resolve(answer),
      );
    });

  try {
    // The user, licensed for a Direct Routing number; an upsert, so every run may make it.
    await call('UpsertUser', {
      user: {
        user_principal_name: USER,
        display_name: 'Node Client',
        usage_location: 'US',
        licenses: ['PHONE_SYSTEM'],
      },
    });
    // A run stopped half-way may have left the user a number: start from none, without a
    // block (block_days 0) and without an email.
    const leftover = await call('RemovePhoneNumber', {
      identity: USER,
      remove_all: true,
      block_days: 0,
      notify_user: false,
    });
    if (leftover.phone_numbers.length > 0) {
      console.log(
        `cleared what an earlier run left: ${leftover.phone_numbers.map((n) => n.phone_number)}`,
      );
    }

    const assigned = await call('AssignPhoneNumber', {
      identity: USER,
      phone_number: FIRST,
      phone_number_type: 'DIRECT_ROUTING',
      notify_user: false,
    });
    const number = assigned.phone_number;
    console.log(
      `assigned ${number.phone_number} to ${number.assigned_to_user_principal_name}: ` +
        `${number.assignment_category}, ${number.activation_state}, ` +
        `enterprise voice ${assigned.user.enterprise_voice_enabled ? 'on' : 'off'}`,
    );
    expect('assigned number', number.phone_number, FIRST);
    expect('assigned to', number.assigned_to_user_principal_name, USER);
    expect('assignment category', number.assignment_category, 'PRIMARY');
    expect('activation state', number.activation_state, 'ACTIVATED');
    expect('enterprise voice after assigning', assigned.user.enterprise_voice_enabled, true);
    expect("the user's numbers after assigning", assigned.user.phone_numbers, [FIRST]);

    // A number has one holder: giving the user's number to Jack is refused, and the reason is
    // for programs to read in the ErrorInfo, not in the message.
    try {
      await call('AssignPhoneNumber', { identity: OTHER_USER, phone_number: FIRST });
      failures.push(`assigning ${FIRST} to ${OTHER_USER} succeeded; it is ${USER}'s`);
    } catch (error) {
      if (error.code === undefined) throw error;
      const info = errorInfo(error);
      console.log(`refused as expected: ${describe(error)}`);
      expect('code of the refusal', grpc.status[error.code], 'FAILED_PRECONDITION');
      expect('ErrorInfo.reason of the refusal', info && info.reason, 'NUMBER_ALREADY_ASSIGNED');
      expect('ErrorInfo.domain of the refusal', info && info.domain, 'numbers.v1');
    }

    const changed = await call('ChangePhoneNumber', {
      identity: USER,
      phone_number: SECOND,
      phone_number_type: 'DIRECT_ROUTING',
      notify_user: false,
    });
    console.log(
      `changed ${changed.previous_phone_number.phone_number} ` +
        `(${changed.previous_phone_number.assignment_status}) ` +
        `for ${changed.phone_number.phone_number}; ` +
        `${USER} holds ${JSON.stringify(changed.user.phone_numbers)}`,
    );
    expect('previous number', changed.previous_phone_number.phone_number, FIRST);
    expect(
      "previous number's status",
      changed.previous_phone_number.assignment_status,
      'UNASSIGNED',
    );
    expect('new number', changed.phone_number.phone_number, SECOND);
    expect("new number's holder", changed.phone_number.assigned_to_user_principal_name, USER);
    expect("the user's numbers after changing", changed.user.phone_numbers, [SECOND]);

    const removed = await call('RemovePhoneNumber', {
      identity: USER,
      phone_number: SECOND,
      block_days: 0,
      notify_user: false,
    });
    const statuses = removed.phone_numbers.map((n) => [n.phone_number, n.assignment_status]);
    console.log(
      `removed ${JSON.stringify(statuses)} from ${removed.user.user_principal_name}; ` +
        `enterprise voice ${removed.user.enterprise_voice_enabled ? 'on' : 'off'}`,
    );
    expect('removed numbers', statuses, [[SECOND, 'UNASSIGNED']]);
    expect("the user's numbers after removing", removed.user.phone_numbers, []);
    expect('enterprise voice after removing', removed.user.enterprise_voice_enabled, false);
  } catch (error) {
    if (error.code === undefined) throw error;
    // An unexpected refusal: say which, with its reason, and fail.
    console.error(`unexpected error: ${describe(error)}`);
    return 1;
  } finally {
    client.close();
  }

  if (failures.length > 0) {
    console.error('the Node client saw answers it did not expect:');
    for (const failure of failures) console.error(`  ${failure}`);
    return 1;
  }
  console.log('node client: assign, change and remove worked as expected');
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(error);
    process.exitCode = 1;
  },
);
