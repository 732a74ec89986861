#!/bin/sh
# Runs in the agent's work directory; writes nothing outside it.
set -eu
cat > backend.conf <<CONF
version=${version}
port=${port}
CONF
echo "backend ${version} configured on port ${port}"
printf '%s:%s' "${deploy_server_id}" "${port}" > "${heat_outputs_path}.host_and_port"
printf '%s' "${version}" > "${heat_outputs_path}.version"
