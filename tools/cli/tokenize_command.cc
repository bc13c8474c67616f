// tandem tokenize / tandem detokenize: a Hugging Face tokenizer.json from the command line.
//   tandem tokenize --tokenizer FILE (--text STR | --file PATH) [--add-special-tokens]
//     prints the ids on one line, comma-separated;
//   tandem detokenize --tokenizer FILE --ids 1,2,3 [--skip-special-tokens]
//     prints the text (no newline added);
//   tandem detokenize --tokenizer FILE --stream [--ids 1,2,3] [--skip-special-tokens]
//     runs the streaming detokenizer (the server's text deltas): ids from --ids, else from stdin
//     (decimal, separated by commas or whitespace, processed as they arrive), and prints one JSON
//     line per id, {"id":N,"delta":"..."}, flushed at once, then {"id":null,"delta":"..."} with
//     what Finish() releases at the end. The deltas concatenate to the plain detokenize output.
#include <cctype>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status.h"
#include "nlohmann/json.hpp"
#include "tokenizer/tokenizer.h"
#include "tools/cli/command.h"

namespace tandem::cli {
namespace {

absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> LoadTokenizer(const Args& args) {
  const auto path = args.Get("tokenizer");
  if (!path) return absl::InvalidArgumentError("--tokenizer FILE is required");
  return tokenizer::Tokenizer::FromFile(*path);
}

absl::Status RunTokenize(const Args& args) {
  RETURN_IF_ERROR(args.CheckKnown({"tokenizer", "text", "file", "add-special-tokens"}));
  ASSIGN_OR_RETURN(auto tok, LoadTokenizer(args));
  std::string text;
  if (args.Has("text") == args.Has("file")) {
    return absl::InvalidArgumentError("give exactly one of --text STR and --file PATH");
  }
  if (args.Has("text")) {
    text = *args.Get("text");
  } else {
    std::ifstream in(*args.Get("file"), std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot open --file ", *args.Get("file")));
    std::stringstream buffer;
    buffer << in.rdbuf();
    text = buffer.str();
  }
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, tok->Encode(text, args.Has("add-special-tokens")));
  std::printf("%s\n", absl::StrJoin(ids, ",").c_str());
  return absl::OkStatus();
}

absl::Status CheckId(int64_t id, const tokenizer::Tokenizer& tok) {
  if (id < 0 || id >= tok.vocab_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ids: ", id, " is outside the vocabulary [0, ", tok.vocab_size(), ")"));
  }
  return absl::OkStatus();
}

void PrintDelta(const std::string& id, const std::string& delta) {
  // Deltas are valid UTF-8 (the detokenizer replaces bad bytes with U+FFFD).
  std::printf("{\"id\":%s,\"delta\":%s}\n", id.c_str(), nlohmann::json(delta).dump().c_str());
  std::fflush(stdout);
}

// Reads the next id from stdin: digits separated by commas or whitespace. Sets *done at EOF.
absl::StatusOr<int64_t> NextStdinId(bool* done) {
  std::string word;
  int c;
  while ((c = std::getchar()) != EOF) {
    if (c == ',' || std::isspace(c)) {
      if (!word.empty()) break;
      continue;
    }
    word.push_back(static_cast<char>(c));
  }
  if (word.empty()) {
    *done = true;
    return 0;
  }
  ASSIGN_OR_RETURN(std::vector<int64_t> one, ParseIdList(word, "stdin"));
  return one[0];
}

absl::Status RunDetokenizeStream(const Args& args, const tokenizer::Tokenizer& tok) {
  tokenizer::StreamingDetokenizer stream(tok, args.Has("skip-special-tokens"));
  if (args.Has("ids")) {
    ASSIGN_OR_RETURN(std::vector<int64_t> ids, ParseIdList(*args.Get("ids"), "--ids"));
    for (int64_t id : ids) RETURN_IF_ERROR(CheckId(id, tok));
    for (int64_t id : ids) PrintDelta(absl::StrCat(id), stream.Add(static_cast<int32_t>(id)));
  } else {
    bool done = false;
    while (true) {
      ASSIGN_OR_RETURN(int64_t id, NextStdinId(&done));
      if (done) break;
      RETURN_IF_ERROR(CheckId(id, tok));
      PrintDelta(absl::StrCat(id), stream.Add(static_cast<int32_t>(id)));
    }
  }
  PrintDelta("null", stream.Finish());
  return absl::OkStatus();
}

absl::Status RunDetokenize(const Args& args) {
  RETURN_IF_ERROR(args.CheckKnown({"tokenizer", "ids", "skip-special-tokens", "stream"}));
  ASSIGN_OR_RETURN(auto tok, LoadTokenizer(args));
  if (args.Has("stream")) return RunDetokenizeStream(args, *tok);
  if (!args.Has("ids")) return absl::InvalidArgumentError("--ids 1,2,3 (or --stream) is required");
  ASSIGN_OR_RETURN(std::vector<int64_t> ids64, ParseIdList(*args.Get("ids"), "--ids"));
  std::vector<int32_t> ids;
  for (int64_t id : ids64) {
    RETURN_IF_ERROR(CheckId(id, *tok));
    ids.push_back(static_cast<int32_t>(id));
  }
  const std::string text = tok->Decode(ids, args.Has("skip-special-tokens"));
  std::fwrite(text.data(), 1, text.size(), stdout);
  return absl::OkStatus();
}

TANDEM_COMMAND("tokenize", "token ids of a text with a Hugging Face tokenizer.json",
               "--tokenizer FILE (--text STR | --file PATH) [--add-special-tokens]",
               {"add-special-tokens"}, [](const Args& args) {
                 absl::Status s = RunTokenize(args);
                 return s.ok() ? 0 : Fail("tokenize", s);
               });

TANDEM_COMMAND("detokenize", "the text of token ids with a Hugging Face tokenizer.json",
               "--tokenizer FILE (--ids 1,2,3 | --stream [--ids 1,2,3]) [--skip-special-tokens]\n"
               "  --stream: one JSON line per id, {\"id\":N,\"delta\":\"...\"}, then "
               "{\"id\":null,\"delta\":\"...\"};\n           ids from --ids, else stdin "
               "(comma/space separated)",
               {"skip-special-tokens", "stream"}, [](const Args& args) {
                 absl::Status s = RunDetokenize(args);
                 return s.ok() ? 0 : Fail("detokenize", s);
               });

}  // namespace
}  // namespace tandem::cli
