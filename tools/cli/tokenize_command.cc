// tandem tokenize / tandem detokenize: a Hugging Face tokenizer.json from the command line.
//   tandem tokenize --tokenizer FILE (--text STR | --file PATH) [--add-special-tokens]
//     prints the ids on one line, comma-separated;
//   tandem detokenize --tokenizer FILE --ids 1,2,3 [--skip-special-tokens]
//     prints the text (no newline added).
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status.h"
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

absl::Status RunDetokenize(const Args& args) {
  RETURN_IF_ERROR(args.CheckKnown({"tokenizer", "ids", "skip-special-tokens"}));
  ASSIGN_OR_RETURN(auto tok, LoadTokenizer(args));
  if (!args.Has("ids")) return absl::InvalidArgumentError("--ids 1,2,3 is required");
  ASSIGN_OR_RETURN(std::vector<int64_t> ids64, ParseIdList(*args.Get("ids"), "--ids"));
  std::vector<int32_t> ids;
  for (int64_t id : ids64) {
    if (id < 0 || id >= tok->vocab_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--ids: ", id, " is outside the vocabulary [0, ", tok->vocab_size(), ")"));
    }
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
               "--tokenizer FILE --ids 1,2,3 [--skip-special-tokens]", {"skip-special-tokens"},
               [](const Args& args) {
                 absl::Status s = RunDetokenize(args);
                 return s.ok() ? 0 : Fail("detokenize", s);
               });

}  // namespace
}  // namespace tandem::cli
