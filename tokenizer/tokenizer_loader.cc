// tokenizer.json -> TokenizerImpl. Every error names the JSON path of the offending value.
#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/json_limits.h"
#include "core/status.h"
#include "nlohmann/json.hpp"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"

namespace tandem::tokenizer {
namespace {

using Json = nlohmann::json;

// The largest tokenizer.json read (real ones are 2-40 MiB); parsing costs ~10x the size in memory.
constexpr size_t kMaxTokenizerJsonBytes = size_t{256} << 20;

// GPT-2's pre-tokenization pattern, used by ByteLevel with use_regex.
constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

absl::Status Bad(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", path, ": ", what));
}

absl::StatusOr<const Json*> Field(const Json& object, const std::string& path, const char* key) {
  auto it = object.find(key);
  if (it == object.end()) return Bad(absl::StrCat(path, ".", key), "missing");
  return &*it;
}

absl::StatusOr<std::string> String(const Json& value, const std::string& path) {
  if (!value.is_string())
    return Bad(path, absl::StrCat("expected a string, found ", value.type_name()));
  return value.get<std::string>();
}

absl::StatusOr<bool> Bool(const Json& object, const std::string& path, const char* key,
                          bool fallback) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) {
    return Bad(absl::StrCat(path, ".", key),
               absl::StrCat("expected a boolean, found ", it->type_name()));
  }
  return it->get<bool>();
}

absl::StatusOr<int32_t> Id(const Json& value, const std::string& path) {
  if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > (1 << 30)) {
    return Bad(path, absl::StrCat("expected a token id (integer 0..2^30), found ", value.dump()));
  }
  return static_cast<int32_t>(value.get<int64_t>());
}

absl::StatusOr<std::string> Type(const Json& object, const std::string& path) {
  if (!object.is_object())
    return Bad(path, absl::StrCat("expected an object, found ", object.type_name()));
  ASSIGN_OR_RETURN(const Json* type, Field(object, path, "type"));
  return String(*type, path + ".type");
}

absl::Status LoadModel(const Json& model, TokenizerImpl* impl) {
  const std::string path = "model";
  if (!model.is_object()) return Bad(path, "expected an object");
  if (model.contains("type")) {
    ASSIGN_OR_RETURN(std::string type, String(model["type"], "model.type"));
    if (type != "BPE")
      return Bad("model.type", absl::StrCat("\"", type, "\" is not supported (only BPE)"));
  }
  if (model.contains("dropout") && !model["dropout"].is_null()) {
    return Bad("model.dropout", "BPE dropout is not supported (must be null)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() &&
        !(model[key].is_string() && model[key].get<std::string>().empty())) {
      return Bad(absl::StrCat("model.", key), "is not supported (must be null)");
    }
  }
  ASSIGN_OR_RETURN(const Json* vocab, Field(model, path, "vocab"));
  if (!vocab->is_object()) return Bad("model.vocab", "expected an object of token -> id");
  impl->vocab.reserve(vocab->size());
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const std::string item_path = absl::StrCat("model.vocab[\"", it.key(), "\"]");
    ASSIGN_OR_RETURN(int32_t id, Id(it.value(), item_path));
    RETURN_IF_ERROR(core::Annotate(ValidateUtf8(it.key()), item_path));
    impl->vocab.emplace(it.key(), id);
  }
  ASSIGN_OR_RETURN(const Json* merges, Field(model, path, "merges"));
  if (!merges->is_array()) return Bad("model.merges", "expected an array");
  impl->merges.reserve(merges->size());
  for (size_t i = 0; i < merges->size(); ++i) {
    const Json& m = (*merges)[i];
    const std::string item_path = absl::StrCat("model.merges[", i, "]");
    std::string left, right;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        return Bad(item_path, absl::StrCat("expected \"left right\", found \"", s, "\""));
      }
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      return Bad(item_path,
                 absl::StrCat("expected \"left right\" or [left, right], found ", m.dump()));
    }
    auto l = impl->vocab.find(left), r = impl->vocab.find(right),
         merged = impl->vocab.find(left + right);
    if (l == impl->vocab.end() || r == impl->vocab.end() || merged == impl->vocab.end()) {
      return Bad(item_path, absl::StrCat("merge \"", left, "\" + \"", right,
                                         "\" refers to a token missing from model.vocab"));
    }
    const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(l->second)) << 32) |
                         static_cast<uint32_t>(r->second);
    // A pair listed twice keeps its last rank, as in Hugging Face (later entries overwrite).
    impl->merges.insert_or_assign(key, std::make_pair(static_cast<int32_t>(i), merged->second));
  }
  if (model.contains("unk_token") && !model["unk_token"].is_null()) {
    ASSIGN_OR_RETURN(std::string unk, String(model["unk_token"], "model.unk_token"));
    auto it = impl->vocab.find(unk);
    if (it == impl->vocab.end())
      return Bad("model.unk_token", absl::StrCat("\"", unk, "\" is not in model.vocab"));
    impl->unk_id = it->second;
  }
  ASSIGN_OR_RETURN(impl->fuse_unk, Bool(model, path, "fuse_unk", false));
  ASSIGN_OR_RETURN(impl->byte_fallback, Bool(model, path, "byte_fallback", false));
  ASSIGN_OR_RETURN(impl->ignore_merges, Bool(model, path, "ignore_merges", false));
  for (int b = 0; b < 256; ++b) {
    auto it = impl->vocab.find(absl::StrFormat("<0x%02X>", b));
    impl->byte_fallback_ids[b] = it == impl->vocab.end() ? -1 : it->second;
  }
  return absl::OkStatus();
}

absl::Status LoadNormalizer(const Json& n, const std::string& path, TokenizerImpl* impl) {
  if (n.is_null()) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::string type, Type(n, path));
  if (type == "NFC") {
    impl->normalizers.push_back(NormalizerKind::kNfc);
  } else if (type == "NFD") {
    impl->normalizers.push_back(NormalizerKind::kNfd);
  } else if (type == "NFKC") {
    impl->normalizers.push_back(NormalizerKind::kNfkc);
  } else if (type == "NFKD") {
    impl->normalizers.push_back(NormalizerKind::kNfkd);
  } else if (type == "Sequence") {
    ASSIGN_OR_RETURN(const Json* list, Field(n, path, "normalizers"));
    if (!list->is_array()) return Bad(path + ".normalizers", "expected an array");
    for (size_t i = 0; i < list->size(); ++i) {
      RETURN_IF_ERROR(
          LoadNormalizer((*list)[i], absl::StrCat(path, ".normalizers[", i, "]"), impl));
    }
  } else {
    return Bad(path + ".type",
               absl::StrCat("normalizer \"", type,
                            "\" is not supported (NFC, NFD, NFKC, NFKD, Sequence)"));
  }
  return absl::OkStatus();
}

absl::Status AddSplit(absl::string_view pattern, bool literal, SplitBehavior behavior, bool invert,
                      const std::string& path, TokenizerImpl* impl) {
  auto regex = Regex::Compile(pattern, literal);
  if (!regex.ok()) return Bad(path, regex.status().message());
  PreTokenizerStep step{PreTokenizerStep::Kind::kSplit, std::move(regex).value(), behavior, invert};
  impl->pre_tokenizer.push_back(std::move(step));
  return absl::OkStatus();
}

absl::Status LoadPreTokenizer(const Json& p, const std::string& path, TokenizerImpl* impl) {
  if (p.is_null()) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::string type, Type(p, path));
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(const Json* list, Field(p, path, "pretokenizers"));
    if (!list->is_array()) return Bad(path + ".pretokenizers", "expected an array");
    for (size_t i = 0; i < list->size(); ++i) {
      RETURN_IF_ERROR(
          LoadPreTokenizer((*list)[i], absl::StrCat(path, ".pretokenizers[", i, "]"), impl));
    }
    return absl::OkStatus();
  }
  if (type == "ByteLevel") {
    ASSIGN_OR_RETURN(bool prefix, Bool(p, path, "add_prefix_space", true));
    ASSIGN_OR_RETURN(bool use_regex, Bool(p, path, "use_regex", true));
    if (prefix) impl->pre_tokenizer.push_back({PreTokenizerStep::Kind::kPrefixSpace, nullptr});
    if (use_regex) {
      RETURN_IF_ERROR(AddSplit(kGpt2Pattern, false, SplitBehavior::kIsolated, false, path, impl));
    }
    impl->pre_tokenizer.push_back({PreTokenizerStep::Kind::kByteLevelMap, nullptr});
    return absl::OkStatus();
  }
  if (type == "Split") {
    ASSIGN_OR_RETURN(const Json* pattern, Field(p, path, "pattern"));
    std::string text;
    bool literal;
    if (pattern->is_object() && pattern->contains("Regex")) {
      ASSIGN_OR_RETURN(text, String((*pattern)["Regex"], path + ".pattern.Regex"));
      literal = false;
    } else if (pattern->is_object() && pattern->contains("String")) {
      ASSIGN_OR_RETURN(text, String((*pattern)["String"], path + ".pattern.String"));
      literal = true;
    } else {
      return Bad(path + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
    }
    ASSIGN_OR_RETURN(const Json* behavior_json, Field(p, path, "behavior"));
    ASSIGN_OR_RETURN(std::string b, String(*behavior_json, path + ".behavior"));
    SplitBehavior behavior;
    if (b == "Removed") {
      behavior = SplitBehavior::kRemoved;
    } else if (b == "Isolated") {
      behavior = SplitBehavior::kIsolated;
    } else if (b == "MergedWithPrevious") {
      behavior = SplitBehavior::kMergedWithPrevious;
    } else if (b == "MergedWithNext") {
      behavior = SplitBehavior::kMergedWithNext;
    } else if (b == "Contiguous") {
      behavior = SplitBehavior::kContiguous;
    } else {
      return Bad(path + ".behavior", absl::StrCat("unknown behavior \"", b, "\""));
    }
    ASSIGN_OR_RETURN(bool invert, Bool(p, path, "invert", false));
    return AddSplit(text, literal, behavior, invert, path + ".pattern", impl);
  }
  return Bad(path + ".type", absl::StrCat("pre-tokenizer \"", type,
                                          "\" is not supported (Split, ByteLevel, Sequence)"));
}

absl::StatusOr<int32_t> SpecialId(const Json& pair, const std::string& path) {
  // BertProcessing / RobertaProcessing: ["[CLS]", 101].
  if (!pair.is_array() || pair.size() != 2) return Bad(path, "expected [token, id]");
  return Id(pair[1], path + "[1]");
}

absl::Status LoadPostProcessor(const Json& p, const std::string& path, TokenizerImpl* impl) {
  if (p.is_null()) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::string type, Type(p, path));
  if (type == "ByteLevel") return absl::OkStatus();  // offsets only
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(const Json* list, Field(p, path, "processors"));
    if (!list->is_array()) return Bad(path + ".processors", "expected an array");
    for (size_t i = 0; i < list->size(); ++i) {
      RETURN_IF_ERROR(
          LoadPostProcessor((*list)[i], absl::StrCat(path, ".processors[", i, "]"), impl));
    }
    return absl::OkStatus();
  }
  std::vector<int32_t> prefix, suffix;
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    ASSIGN_OR_RETURN(const Json* cls, Field(p, path, "cls"));
    ASSIGN_OR_RETURN(const Json* sep, Field(p, path, "sep"));
    ASSIGN_OR_RETURN(int32_t cls_id, SpecialId(*cls, path + ".cls"));
    ASSIGN_OR_RETURN(int32_t sep_id, SpecialId(*sep, path + ".sep"));
    prefix = {cls_id};
    suffix = {sep_id};
  } else if (type == "TemplateProcessing") {
    ASSIGN_OR_RETURN(const Json* single, Field(p, path, "single"));
    ASSIGN_OR_RETURN(const Json* specials, Field(p, path, "special_tokens"));
    if (!single->is_array()) return Bad(path + ".single", "expected an array");
    if (!specials->is_object()) return Bad(path + ".special_tokens", "expected an object");
    bool seen_sequence = false;
    for (size_t i = 0; i < single->size(); ++i) {
      const Json& item = (*single)[i];
      const std::string item_path = absl::StrCat(path, ".single[", i, "]");
      if (item.is_object() && item.contains("Sequence")) {
        if (seen_sequence) return Bad(item_path, "a single template has one $A sequence");
        seen_sequence = true;
      } else if (item.is_object() && item.contains("SpecialToken")) {
        const Json& special = item["SpecialToken"];
        if (!special.is_object() || !special.contains("id"))
          return Bad(item_path, "expected {\"id\": ...}");
        ASSIGN_OR_RETURN(std::string name, String(special["id"], item_path + ".SpecialToken.id"));
        auto it = specials->find(name);
        if (it == specials->end() || !it->is_object() || !it->contains("ids") ||
            !(*it)["ids"].is_array()) {
          return Bad(item_path, absl::StrCat("special token \"", name, "\" is not in ", path,
                                             ".special_tokens with an ids list"));
        }
        for (size_t k = 0; k < (*it)["ids"].size(); ++k) {
          ASSIGN_OR_RETURN(int32_t id, Id((*it)["ids"][k], absl::StrCat(path, ".special_tokens[\"",
                                                                        name, "\"].ids[", k, "]")));
          (seen_sequence ? suffix : prefix).push_back(id);
        }
      } else {
        return Bad(item_path, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
      }
    }
    if (!seen_sequence) return Bad(path + ".single", "has no $A sequence");
  } else {
    return Bad(path + ".type", absl::StrCat("post-processor \"", type,
                                            "\" is not supported (TemplateProcessing, ByteLevel, "
                                            "BertProcessing, RobertaProcessing, Sequence)"));
  }
  impl->prefix_ids.insert(impl->prefix_ids.begin(), prefix.begin(), prefix.end());
  impl->suffix_ids.insert(impl->suffix_ids.end(), suffix.begin(), suffix.end());
  return absl::OkStatus();
}

absl::Status LoadDecoder(const Json& d, TokenizerImpl* impl) {
  if (d.is_null()) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::string type, Type(d, "decoder"));
  if (type == "ByteLevel") {
    impl->decoder = TokenizerImpl::Decoder::kByteLevel;
    return absl::OkStatus();
  }
  return Bad("decoder.type",
             absl::StrCat("decoder \"", type, "\" is not supported (ByteLevel, null)"));
}

// Hugging Face does not trust the ids in added_tokens (AddedVocabulary::add_tokens): in file
// order, a token takes the id of an earlier added token with the same content, else its id in
// model.vocab, else the next free id: len(model.vocab) for the first such token, then one past the
// largest added id once that reaches len(model.vocab). The id in the file is read (it must be a
// valid id) and otherwise ignored. A repeated content keeps one id; its last entry's flags win.
absl::Status LoadAddedTokens(const Json& list, TokenizerImpl* impl) {
  if (list.is_null()) return absl::OkStatus();
  if (!list.is_array()) return Bad("added_tokens", "expected an array");
  const auto model_size = static_cast<int64_t>(impl->vocab.size());
  absl::flat_hash_map<std::string, size_t> index_of;  // content -> index in impl->added_tokens
  int64_t max_added = -1;
  for (size_t i = 0; i < list.size(); ++i) {
    const Json& t = list[i];
    const std::string path = absl::StrCat("added_tokens[", i, "]");
    if (!t.is_object()) return Bad(path, "expected an object");
    AddedToken token;
    ASSIGN_OR_RETURN(const Json* id, Field(t, path, "id"));
    ASSIGN_OR_RETURN(token.id, Id(*id, path + ".id"));
    ASSIGN_OR_RETURN(const Json* content, Field(t, path, "content"));
    ASSIGN_OR_RETURN(token.content, String(*content, path + ".content"));
    RETURN_IF_ERROR(core::Annotate(ValidateUtf8(token.content), path + ".content"));
    if (token.content.empty()) return Bad(path + ".content", "is empty");
    ASSIGN_OR_RETURN(token.special, Bool(t, path, "special", false));
    ASSIGN_OR_RETURN(token.single_word, Bool(t, path, "single_word", false));
    ASSIGN_OR_RETURN(token.lstrip, Bool(t, path, "lstrip", false));
    ASSIGN_OR_RETURN(token.rstrip, Bool(t, path, "rstrip", false));
    ASSIGN_OR_RETURN(token.normalized, Bool(t, path, "normalized", !token.special));
    if (auto it = index_of.find(token.content); it != index_of.end()) {
      token.id = impl->added_tokens[it->second].id;
      impl->added_tokens[it->second] = std::move(token);
      continue;
    }
    if (auto it = impl->vocab.find(token.content); it != impl->vocab.end()) {
      token.id = it->second;
    } else if (max_added < 0) {
      token.id = static_cast<int32_t>(model_size);
    } else {
      token.id = static_cast<int32_t>(max_added >= model_size || model_size == 0 ? max_added + 1
                                                                                 : model_size);
    }
    if (token.id > (1 << 30)) return Bad(path + ".id", "more than 2^30 tokens");
    max_added = std::max<int64_t>(max_added, token.id);
    index_of.emplace(token.content, impl->added_tokens.size());
    impl->added_tokens.push_back(std::move(token));
  }
  return absl::OkStatus();
}

absl::Status Finish(TokenizerImpl* impl) {
  // Tries: normalized tokens are matched on normalized text, so their content is normalized too.
  for (size_t i = 0; i < impl->added_tokens.size(); ++i) {
    const AddedToken& t = impl->added_tokens[i];
    if (t.normalized && !impl->normalizers.empty()) {
      std::string normalized;
      RETURN_IF_ERROR(Normalize(impl->normalizers, t.content, &normalized));
      impl->normalized_trie.Insert(normalized, static_cast<int32_t>(i));
    } else if (t.normalized) {
      impl->normalized_trie.Insert(t.content, static_cast<int32_t>(i));
    } else {
      impl->raw_trie.Insert(t.content, static_cast<int32_t>(i));
    }
  }
  int32_t size = 0;
  for (const auto& [token, id] : impl->vocab) size = std::max(size, id + 1);
  for (const AddedToken& t : impl->added_tokens) size = std::max(size, t.id + 1);
  // Ids index dense tables: refuse a file whose ids are far sparser than its token count.
  const size_t tokens = impl->vocab.size() + impl->added_tokens.size();
  if (static_cast<size_t>(size) > 2 * tokens + 1024) {
    return Bad("model.vocab", absl::StrCat("token ids are too sparse: largest id ", size - 1,
                                           " for ", tokens, " tokens"));
  }
  impl->id_to_token.assign(size, "");
  impl->id_flags.assign(size, 0);
  for (const auto& [token, id] : impl->vocab) {
    impl->id_to_token[id] = token;
    impl->id_flags[id] = 1;
  }
  for (const AddedToken& t : impl->added_tokens) {
    impl->id_to_token[t.id] = t.content;
    impl->id_flags[t.id] = t.special ? 3 : 1;
  }
  for (int32_t id : impl->prefix_ids) {
    if (id >= size)
      return Bad("post_processor", absl::StrCat("token id ", id, " is outside the vocabulary"));
  }
  for (int32_t id : impl->suffix_ids) {
    if (id >= size)
      return Bad("post_processor", absl::StrCat("token id ", id, " is outside the vocabulary"));
  }
  // Decoder bytes per id. ByteLevel: each character maps back to its byte; a token with any
  // character outside the byte alphabet is emitted as its own UTF-8 (as HF does).
  impl->id_to_bytes.assign(size, "");
  absl::flat_hash_map<std::string, uint8_t> char_to_byte;
  const auto& chars = ByteLevelChars();
  for (int b = 0; b < 256; ++b) char_to_byte[chars[b]] = static_cast<uint8_t>(b);
  for (int32_t id = 0; id < size; ++id) {
    const std::string& token = impl->id_to_token[id];
    if (impl->decoder == TokenizerImpl::Decoder::kNone) {
      impl->id_to_bytes[id] = token;
      continue;
    }
    std::string bytes;
    size_t pos = 0;
    bool all = true;
    while (pos < token.size()) {
      const size_t start = pos;
      NextCodePoint(token, &pos);
      auto it = char_to_byte.find(token.substr(start, pos - start));
      if (it == char_to_byte.end()) {
        all = false;
        break;
      }
      bytes.push_back(static_cast<char>(it->second));
    }
    impl->id_to_bytes[id] = all ? bytes : token;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(absl::string_view json) {
  // Bounded before parsing: the loaders (Sequence in Sequence...) and error messages (dump())
  // recurse once per nesting level. 128 levels is also where Hugging Face (serde_json) stops.
  RETURN_IF_ERROR(core::Annotate(
      core::CheckJsonSize(json.size(), kMaxTokenizerJsonBytes, "the file"), "tokenizer.json"));
  RETURN_IF_ERROR(
      core::Annotate(core::CheckJsonDepth(json, core::kMaxJsonDepth), "tokenizer.json"));
  const Json root = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return absl::InvalidArgumentError("tokenizer.json: not valid JSON");
  if (!root.is_object()) return Bad("(root)", "expected an object");
  auto impl = std::make_unique<TokenizerImpl>();
  ASSIGN_OR_RETURN(const Json* model, Field(root, "(root)", "model"));
  RETURN_IF_ERROR(LoadModel(*model, impl.get()));
  static const Json kNull;
  auto get = [&](const char* key) -> const Json& {
    auto it = root.find(key);
    return it == root.end() ? kNull : *it;
  };
  RETURN_IF_ERROR(LoadNormalizer(get("normalizer"), "normalizer", impl.get()));
  RETURN_IF_ERROR(LoadPreTokenizer(get("pre_tokenizer"), "pre_tokenizer", impl.get()));
  RETURN_IF_ERROR(LoadAddedTokens(get("added_tokens"), impl.get()));
  RETURN_IF_ERROR(LoadPostProcessor(get("post_processor"), "post_processor", impl.get()));
  RETURN_IF_ERROR(LoadDecoder(get("decoder"), impl.get()));
  RETURN_IF_ERROR(Finish(impl.get()));
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open tokenizer file ", path));
  const auto size = static_cast<size_t>(std::max<std::streamoff>(0, in.tellg()));
  RETURN_IF_ERROR(
      core::Annotate(core::CheckJsonSize(size, kMaxTokenizerJsonBytes, "tokenizer.json"), path));
  in.seekg(0);
  std::stringstream buffer;
  buffer << in.rdbuf();
  auto tokenizer = FromJson(buffer.str());
  if (!tokenizer.ok()) return core::Annotate(tokenizer.status(), path);
  return tokenizer;
}

}  // namespace tandem::tokenizer
