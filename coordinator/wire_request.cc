#include "coordinator/wire_request.h"

#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/validation.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "tandem/v1/tandem.pb.h"

namespace tandem::coordinator {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::internal::WireFormatLite;

constexpr int kMaxDepth = 64;

absl::Status Malformed(const Descriptor& root, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("request: not a valid ", root.full_name(), " (", what, ")"));
}

// Walks one message up to the stream's current limit.
absl::Status Walk(google::protobuf::io::CodedInputStream* in, const Descriptor& type,
                  const std::string& prefix, int depth, const Descriptor& root) {
  if (depth > kMaxDepth) return Malformed(root, "nested too deeply");
  std::map<int, int> occurrences;  // field number -> elements seen (repeated fields' index)
  while (true) {
    const uint32_t tag = in->ReadTag();
    if (tag == 0) {
      // 0 at the end of the message (or of the enclosing field), else a bad tag.
      if (!in->ConsumedEntireMessage()) return Malformed(root, "a bad tag");
      return absl::OkStatus();
    }
    const FieldDescriptor* field = type.FindFieldByNumber(WireFormatLite::GetTagFieldNumber(tag));
    const bool nested =
        field != nullptr &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED &&
        (field->type() == FieldDescriptor::TYPE_STRING ||
         field->type() == FieldDescriptor::TYPE_MESSAGE);
    if (!nested) {
      if (!WireFormatLite::SkipField(in, tag)) return Malformed(root, "a truncated field");
      continue;
    }
    std::string name = absl::StrCat(prefix, field->name());
    if (field->is_repeated()) absl::StrAppend(&name, "[", occurrences[field->number()]++, "]");
    uint32_t length = 0;
    if (!in->ReadVarint32(&length)) return Malformed(root, absl::StrCat(name, ": a bad length"));
    if (field->type() == FieldDescriptor::TYPE_STRING) {
      std::string bytes;
      if (!in->ReadString(&bytes, static_cast<int>(length))) {
        return Malformed(root, absl::StrCat(name, ": truncated"));
      }
      if (!IsValidUtf8(bytes)) {
        return absl::InvalidArgumentError(absl::StrCat(name, ": is not valid UTF-8"));
      }
      continue;
    }
    const auto limit = in->PushLimit(static_cast<int>(length));
    const absl::Status inner = Walk(in, *field->message_type(), name + ".", depth + 1, root);
    if (!inner.ok()) return inner;
    if (in->BytesUntilLimit() != 0) return Malformed(root, absl::StrCat(name, ": truncated"));
    in->PopLimit(limit);
  }
}

}  // namespace

absl::Status CheckStringFields(absl::string_view wire, const Descriptor& type) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(wire.data()),
                                            static_cast<int>(wire.size()));
  return Walk(&in, type, "", 0, type);
}

absl::Status ParseRequest(const ::grpc::ByteBuffer& buffer, google::protobuf::Message* out) {
  std::vector<::grpc::Slice> slices;
  std::string wire;
  if (buffer.Valid()) {
    if (!buffer.Dump(&slices).ok()) {
      return absl::InvalidArgumentError("request: cannot read the message bytes");
    }
  }
  wire.reserve(buffer.Valid() ? buffer.Length() : 0);
  for (const ::grpc::Slice& s : slices) {
    wire.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  const Descriptor& type = *out->GetDescriptor();
  const absl::Status strings = CheckStringFields(wire, type);
  if (!strings.ok()) return strings;
  if (!out->ParseFromString(wire)) return Malformed(type, "cannot be parsed");
  return absl::OkStatus();
}

int TandemMethodIndex(absl::string_view method) {
  const auto* service =
      ::tandem::v1::GenerateRequest::descriptor()->file()->FindServiceByName("Tandem");
  const auto* m = service == nullptr ? nullptr : service->FindMethodByName(std::string(method));
  return m == nullptr ? -1 : m->index();
}

}  // namespace tandem::coordinator
