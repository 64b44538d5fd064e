// What rmemd's control socket answers (control_protocol.h): each request is
// checked strictly - it must be an object with a known "command" and only
// that command's fields, each of its type - and any mistake is answered
// with an error naming it. Then `status` is the status document (status.h)
// and `audit` a page of the state store's audit log.
// Loop thread only.
#pragma once

#include <nlohmann/json.hpp>

#include "broker/rmemd/control_protocol.h"
#include "broker/rmemd/service.h"

namespace rmem::rmemd {

// {"ok":true,...} or {"ok":false,"error":...} for one parsed request line.
Json AnswerControlRequest(const Service& service, const Json& request);

}  // namespace rmem::rmemd
