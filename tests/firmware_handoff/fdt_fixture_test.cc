// The carve-out contract's section 3 (FDT), one fixture per rule and side:
// fixtures/<name>.dts is compiled to <name>.dtb by meson, and the table below
// holds the outcome the contract demands for each. The table and the fixture
// directory must list the same names, so no fixture goes untested and no
// expectation lacks its fixture. Byte-level damage that a .dts cannot express
// (magic, truncation, bad tokens) is tested on a compiled fixture at the end.
//
// Environment (set by tests/firmware_handoff/meson.build):
//   RMEM_FDT_FIXTURE_DIR      the directory holding the compiled .dtb files
//   RMEM_FDT_FIXTURE_SRC_DIR  the directory holding the .dts sources
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "firmware_handoff/handoff.h"

namespace rmem::firmware_handoff {
namespace {

using Outcome = std::variant<std::vector<HandoffCarveout>, ErrorKind>;

constexpr uint64_t k2Pow64Minus4K = 0xfffffffffffff000;

HandoffCarveout C(const std::string& node, uint64_t base, uint64_t size,
                  const std::string& use_case, bool no_map = false,
                  std::optional<FirewallRef> firewall = std::nullopt) {
  HandoffCarveout c;
  c.base = PhysAddr(base);
  c.size = size;
  c.use_case = use_case;
  c.no_map = no_map;
  c.firewall = std::move(firewall);
  c.node = node;
  return c;
}

FirewallRef Fw(const std::string& node, uint32_t index) { return FirewallRef{node, index}; }

const FirewallRef kTzc1 = Fw("/soc/tzc@ff000000", 1);

// Fixture name → the outcome contract section 3 demands. Carve-outs are listed
// by ascending base, as the reader must report them.
const std::map<std::string, Outcome>& Expectations() {
  static auto* table = new std::map<std::string, Outcome>{
      // --- accept, every root/reserved-memory cell size (3.3, 3.4) ---
      {"accept_two_carveouts_cells11",
       std::vector{C("/reserved-memory/video@a0000000", 0xa0000000, 0x8000000, "secure-video", true, kTzc1),
                   C("/reserved-memory/tee@b0000000", 0xb0000000, 0x200000, "tee")}},
      {"accept_two_carveouts_cells12",
       std::vector{C("/reserved-memory/video@a0000000", 0xa0000000, 0x8000000, "secure-video", true, kTzc1),
                   C("/reserved-memory/tee@b0000000", 0xb0000000, 0x200000, "tee")}},
      {"accept_two_carveouts_cells21",
       std::vector{C("/reserved-memory/video@a0000000", 0xa0000000, 0x8000000, "secure-video", true, kTzc1),
                   C("/reserved-memory/tee@880000000", 0x880000000, 0x200000, "tee")}},
      {"accept_two_carveouts_cells22",
       std::vector{C("/reserved-memory/video@a0000000", 0xa0000000, 0x8000000, "secure-video", true, kTzc1),
                   C("/reserved-memory/tee@880000000", 0x880000000, 0x200000, "tee")}},
      {"accept_default_root_cells",
       std::vector{C("/reserved-memory/video@a0000000", 0xa0000000, 0x8000000, "secure-video", true)}},
      {"accept_no_reserved_memory", std::vector<HandoffCarveout>{}},
      {"accept_reserved_memory_without_carveouts", std::vector<HandoffCarveout>{}},
      // --- 3.5 what is a carve-out ---
      {"accept_ignores_other_compatibles",
       std::vector{C("/reserved-memory/video@a0000000", 0xa0000000, 0x8000000, "secure-video", true)}},
      {"accept_compatible_list_second_element",
       std::vector{C("/reserved-memory/video@a0000000", 0xa0000000, 0x8000000, "secure-video")}},
      {"accept_ignores_nested_and_non_reserved_carveouts", std::vector<HandoffCarveout>{}},
      {"accept_status_disabled_is_still_a_carveout",
       std::vector{C("/reserved-memory/video@a0000000", 0xa0000000, 0x8000000, "secure-video")}},
      // --- 3.6 reported fields ---
      {"accept_use_case_verbatim",
       std::vector{C("/reserved-memory/video@a0000000", 0xa0000000, 0x8000000,
                     "Secure Video/L1 (DRM) \xc3\xa9")}},
      {"accept_firewall_nested_controller",
       std::vector{C("/reserved-memory/a@a0000000", 0xa0000000, 0x100000, "a", false,
                     Fw("/soc/bus@f0000000/firewall@1000", 0)),
                   C("/reserved-memory/b@a0100000", 0xa0100000, 0x100000, "b", true,
                     Fw("/soc/bus@f0000000/firewall@1000", 7))}},
      {"accept_end_exactly_2pow64",
       std::vector{C("/reserved-memory/top@fffffffffffff000", k2Pow64Minus4K, 0x1000, "secure-video")}},
      // --- 3.7 memory ---
      {"accept_crosses_contiguous_memory_ranges",
       std::vector{C("/reserved-memory/video@9ff00000", 0x9ff00000, 0x200000, "secure-video")}},
      {"accept_crosses_contiguous_ranges_in_one_memory_node",
       std::vector{C("/reserved-memory/video@9ff00000", 0x9ff00000, 0x200000, "secure-video")}},
      {"accept_overlapping_memory_ranges",
       std::vector{C("/reserved-memory/video@9ff00000", 0x9ff00000, 0x10000000, "secure-video")}},
      {"accept_carveout_spans_whole_memory",
       std::vector{C("/reserved-memory/all@80000000", 0x80000000, 0x10000000, "secure-video")}},
      // --- 3.8 overlap, and the sort ---
      {"accept_touching",
       std::vector{C("/reserved-memory/a@a0000000", 0xa0000000, 0x100000, "a"),
                   C("/reserved-memory/b@a0100000", 0xa0100000, 0x100000, "b")}},
      {"accept_sorted_by_base",
       std::vector{C("/reserved-memory/a@90000000", 0x90000000, 0x3000, "a"),
                   C("/reserved-memory/b@a0000000", 0xa0000000, 0x2000, "b", true),
                   C("/reserved-memory/c@b0000000", 0xb0000000, 0x1000, "c")}},

      // --- 3.3 root cells ---
      {"reject_root_address_cells_3", ErrorKind::kRmemBadCells},
      {"reject_root_size_cells_3", ErrorKind::kRmemBadCells},
      {"reject_root_address_cells_0", ErrorKind::kRmemBadCells},
      {"reject_root_size_cells_0", ErrorKind::kRmemBadCells},
      {"reject_root_cells_3_without_reserved_memory", ErrorKind::kRmemBadCells},
      {"reject_root_address_cells_two_words", ErrorKind::kRmemBadCells},
      // --- 3.4 /reserved-memory cells and ranges ---
      {"reject_reserved_memory_cells_differ", ErrorKind::kRmemBadCells},
      {"reject_reserved_memory_size_cells_differ", ErrorKind::kRmemBadCells},
      {"reject_reserved_memory_cells22_root_default", ErrorKind::kRmemBadCells},
      {"reject_reserved_memory_cells_missing", ErrorKind::kRmemBadCells},
      {"reject_reserved_memory_size_cells_missing", ErrorKind::kRmemBadCells},
      {"reject_ranges_not_empty", ErrorKind::kRmemBadCells},
      {"reject_ranges_missing", ErrorKind::kRmemBadCells},
      // --- 3.6 reg ---
      {"reject_missing_reg", ErrorKind::kRmemMissingReg},
      {"reject_dynamic_size_alloc_ranges", ErrorKind::kRmemMissingReg},
      {"reject_two_reg_tuples", ErrorKind::kRmemBadReg},
      {"reject_reg_address_only", ErrorKind::kRmemBadReg},
      {"reject_reg_partial_tuple_cells11", ErrorKind::kRmemBadReg},
      {"reject_reg_empty", ErrorKind::kRmemBadReg},
      {"reject_zero_size", ErrorKind::kRmemZeroSize},
      {"reject_unaligned_base", ErrorKind::kRmemUnaligned},
      {"reject_unaligned_size", ErrorKind::kRmemUnaligned},
      {"reject_range_overflow", ErrorKind::kRmemRangeOverflow},
      {"reject_range_overflow_cells21", ErrorKind::kRmemRangeOverflow},
      // --- 3.6 use-case ---
      {"reject_use_case_missing", ErrorKind::kRmemMissingUseCase},
      {"reject_use_case_empty", ErrorKind::kRmemMissingUseCase},
      {"reject_use_case_no_value", ErrorKind::kRmemMissingUseCase},
      {"reject_use_case_not_terminated", ErrorKind::kRmemMissingUseCase},
      {"reject_use_case_two_strings", ErrorKind::kRmemMissingUseCase},
      {"reject_use_case_leading_nul", ErrorKind::kRmemMissingUseCase},
      // --- 3.6 firewall ---
      {"reject_bad_firewall_no_access_controller_cells", ErrorKind::kRmemBadFirewall},
      {"reject_bad_firewall_access_controller_cells_2", ErrorKind::kRmemBadFirewall},
      {"reject_bad_firewall_access_controller_cells_0", ErrorKind::kRmemBadFirewall},
      {"reject_bad_firewall_short", ErrorKind::kRmemBadFirewall},
      {"reject_bad_firewall_long", ErrorKind::kRmemBadFirewall},
      {"reject_bad_firewall_empty", ErrorKind::kRmemBadFirewall},
      {"reject_bad_firewall_unresolved_phandle", ErrorKind::kRmemBadFirewall},
      {"reject_bad_firewall_phandle_zero", ErrorKind::kRmemBadFirewall},
      // --- 3.7 memory ---
      {"reject_outside_memory", ErrorKind::kRmemOutsideMemory},
      {"reject_straddles_memory_end", ErrorKind::kRmemOutsideMemory},
      {"reject_straddles_memory_start", ErrorKind::kRmemOutsideMemory},
      {"reject_crosses_memory_gap", ErrorKind::kRmemOutsideMemory},
      {"reject_no_memory_node", ErrorKind::kRmemOutsideMemory},
      {"reject_memory_without_device_type", ErrorKind::kRmemOutsideMemory},
      {"reject_memory_node_not_at_root", ErrorKind::kRmemOutsideMemory},
      // --- 3.8 overlap ---
      {"reject_overlap", ErrorKind::kRmemOverlap},
      {"reject_overlap_identical", ErrorKind::kRmemOverlap},
      {"reject_overlap_contained", ErrorKind::kRmemOverlap},
      {"reject_overlap_non_adjacent_in_node_order", ErrorKind::kRmemOverlap},
      {"reject_overlap_last_page", ErrorKind::kRmemOverlap},
      // --- order: several rules broken, the first in contract order wins ---
      {"reject_order_zero_size_before_missing_use_case", ErrorKind::kRmemZeroSize},
      {"reject_order_missing_reg_before_missing_use_case", ErrorKind::kRmemMissingReg},
      {"reject_order_bad_reg_before_zero_size", ErrorKind::kRmemBadReg},
      {"reject_order_unaligned_before_overflow", ErrorKind::kRmemUnaligned},
      {"reject_order_use_case_before_firewall", ErrorKind::kRmemMissingUseCase},
      {"reject_order_node_order", ErrorKind::kRmemBadFirewall},
      {"reject_order_carveout_checks_before_memory", ErrorKind::kRmemMissingUseCase},
      {"reject_order_outside_memory_before_overlap", ErrorKind::kRmemOutsideMemory},
      // --- the initiator binding's fixtures, as the contract sees them ---
      {"initiator_accept_decoder_and_display",
       std::vector{C("/reserved-memory/video@a0000000", 0xa0000000, 0x4000000, "secure-video", true,
                     Fw("/soc/firewall@2a4a0000", 1))}},
      {"initiator_reject_order_contract_first", ErrorKind::kRmemOverlap},
  };
  // Every other initiator_* fixture has no carve-outs: the contract accepts it
  // whatever its initiators say.
  for (const char* name : {
           "initiator_accept_max_access_defaults_to_read_write",
           "initiator_accept_disabled_nodes_ignored",
           "initiator_accept_nested_tree_order",
           "initiator_accept_plain_access_controllers_ignored",
           "initiator_accept_same_id_at_other_controller",
           "initiator_reject_owner_missing",
           "initiator_reject_owner_empty",
           "initiator_reject_owner_no_value",
           "initiator_reject_owner_two_strings",
           "initiator_reject_owner_bad_character",
           "initiator_reject_owner_too_long",
           "initiator_reject_owner_is_cells",
           "initiator_reject_no_access_controllers",
           "initiator_accept_two_controllers",
           "initiator_reject_access_controllers_same_controller_twice",
           "initiator_reject_access_controllers_short",
           "initiator_reject_access_controllers_unresolved",
           "initiator_reject_access_controllers_cells_2",
           "initiator_reject_access_controllers_not_a_controller",
           "initiator_reject_max_access_unknown",
           "initiator_reject_max_access_two_strings",
           "initiator_reject_duplicate_firewall_id",
           "initiator_reject_order_first_bad_node",
       }) {
    table->emplace(name, std::vector<HandoffCarveout>{});
  }
  return *table;
}

// The initiator binding (docs/bindings/rmem-initiator.yaml): what
// ReadPlatformFromFdt reports for the initiator_* fixtures. Every other
// fixture must get the contract's verdict from it, with no initiators.
using InitiatorOutcome = std::variant<std::vector<HandoffInitiator>, ErrorKind>;

HandoffInitiator I(const std::string& node, const std::string& owner, Access max,
                   std::vector<FirewallRef> firewalls) {
  return HandoffInitiator{.node = node, .owner_vm = owner, .max_access = max,
                          .firewalls = std::move(firewalls)};
}
HandoffInitiator I(const std::string& node, const std::string& owner, Access max,
                   FirewallRef firewall) {
  return I(node, owner, max, std::vector<FirewallRef>{std::move(firewall)});
}

const std::map<std::string, InitiatorOutcome>& InitiatorExpectations() {
  const FirewallRef tzc4 = Fw("/soc/firewall@2a4a0000", 4);
  const FirewallRef tzc5 = Fw("/soc/firewall@2a4a0000", 5);
  static const auto* table = new std::map<std::string, InitiatorOutcome>{
      {"initiator_accept_decoder_and_display",
       std::vector{I("/soc/video-decoder@2a600000", "decrypt", Access::kReadWrite, tzc4),
                   I("/soc/display@2a800000", "display", Access::kRead, tzc5)}},
      {"initiator_accept_max_access_defaults_to_read_write",
       std::vector{I("/soc/video-decoder@2a600000", "decrypt", Access::kReadWrite, tzc4),
                   I("/soc/camera@2a900000", "camera_vm-1.0", Access::kWrite,
                     Fw("/soc/firewall@2a4a0000", 6))}},
      {"initiator_accept_disabled_nodes_ignored",
       std::vector{I("/soc/display@2a800000", "display", Access::kRead, tzc4)}},
      {"initiator_accept_nested_tree_order",
       std::vector{I("/soc/bus@2b000000/gpu@2b100000", "infotainment", Access::kReadWrite,
                     Fw("/soc/firewall@2a4b0000", 1)),
                   I("/soc/display@2a800000", "display", Access::kRead, tzc5)}},
      {"initiator_accept_plain_access_controllers_ignored", std::vector<HandoffInitiator>{}},
      {"initiator_accept_same_id_at_other_controller",
       std::vector{I("/soc/video-decoder@2a600000", "decrypt", Access::kReadWrite, tzc4),
                   I("/soc/display@2a800000", "display", Access::kReadWrite,
                     Fw("/soc/firewall@2a4b0000", 4))}},
      {"initiator_reject_owner_missing", ErrorKind::kRmemBadInitiator},
      {"initiator_reject_owner_empty", ErrorKind::kRmemBadInitiator},
      {"initiator_reject_owner_no_value", ErrorKind::kRmemBadInitiator},
      {"initiator_reject_owner_two_strings", ErrorKind::kRmemBadInitiator},
      {"initiator_reject_owner_bad_character", ErrorKind::kRmemBadInitiator},
      {"initiator_reject_owner_too_long", ErrorKind::kRmemBadInitiator},
      {"initiator_reject_owner_is_cells", ErrorKind::kRmemBadInitiator},
      {"initiator_reject_no_access_controllers", ErrorKind::kRmemBadInitiator},
      {"initiator_accept_two_controllers",
       std::vector{I("/soc/display@2a800000", "display", Access::kRead,
                     std::vector{tzc5, Fw("/soc/firewall@2a4b0000", 5)})}},
      {"initiator_reject_access_controllers_same_controller_twice",
       ErrorKind::kRmemBadInitiator},
      {"initiator_reject_access_controllers_short", ErrorKind::kRmemBadInitiator},
      {"initiator_reject_access_controllers_unresolved", ErrorKind::kRmemBadInitiator},
      {"initiator_reject_access_controllers_cells_2", ErrorKind::kRmemBadInitiator},
      {"initiator_reject_access_controllers_not_a_controller", ErrorKind::kRmemBadInitiator},
      {"initiator_reject_max_access_unknown", ErrorKind::kRmemBadInitiator},
      {"initiator_reject_max_access_two_strings", ErrorKind::kRmemBadInitiator},
      {"initiator_reject_duplicate_firewall_id", ErrorKind::kRmemBadInitiator},
      {"initiator_reject_order_first_bad_node", ErrorKind::kRmemBadInitiator},
      {"initiator_reject_order_contract_first", ErrorKind::kRmemOverlap},
  };
  return *table;
}

// The node each initiator rejection must name (the first bad one).
const std::map<std::string, std::string>& InitiatorRejectNames() {
  static const auto* table = new std::map<std::string, std::string>{
      {"initiator_reject_order_first_bad_node", "/soc/display@2a800000:"},
      {"initiator_reject_duplicate_firewall_id",
       "/soc/video-decoder@2a600000 and /soc/display@2a800000"},
      {"initiator_reject_owner_too_long", "/soc/video-decoder@2a600000:"},
      {"initiator_reject_order_contract_first",
       "/reserved-memory/a@a0000000 and /reserved-memory/b@a0100000 overlap"},
  };
  return *table;
}

std::filesystem::path EnvDir(const char* var) {
  const char* dir = std::getenv(var);
  return dir == nullptr ? std::filesystem::path() : std::filesystem::path(dir);
}

std::filesystem::path DtbDir() { return EnvDir("RMEM_FDT_FIXTURE_DIR"); }
std::filesystem::path DtsDir() { return EnvDir("RMEM_FDT_FIXTURE_SRC_DIR"); }

std::set<std::string> StemsWithExtension(const std::filesystem::path& dir, const std::string& ext) {
  std::set<std::string> stems;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ext) {
      stems.insert(entry.path().stem().string());
    }
  }
  return stems;
}

std::optional<std::vector<uint8_t>> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string Describe(const HandoffResult& result) {
  if (const auto* error = std::get_if<HandoffError>(&result)) {
    return std::string("reject ") + ErrorKindName(error->kind) + ": " + error->message;
  }
  return "accept with " + std::to_string(std::get<0>(result).size()) + " carve-out(s)";
}

void ExpectOutcome(const HandoffResult& got, const Outcome& want) {
  if (const auto* kind = std::get_if<ErrorKind>(&want)) {
    const auto* error = std::get_if<HandoffError>(&got);
    ASSERT_NE(error, nullptr) << "want reject " << ErrorKindName(*kind) << ", got " << Describe(got);
    EXPECT_EQ(ErrorKindName(error->kind), std::string(ErrorKindName(*kind)))
        << "message: " << error->message;
    EXPECT_FALSE(error->message.empty()) << "the contract wants a message naming the node";
    return;
  }
  const auto& want_list = std::get<std::vector<HandoffCarveout>>(want);
  const auto* got_list = std::get_if<std::vector<HandoffCarveout>>(&got);
  ASSERT_NE(got_list, nullptr) << "want accept, got " << Describe(got);
  ASSERT_EQ(got_list->size(), want_list.size());
  for (size_t i = 0; i < want_list.size(); ++i) {
    SCOPED_TRACE("carve-out #" + std::to_string(i) + " (" + want_list[i].node + ")");
    const HandoffCarveout& g = (*got_list)[i];
    const HandoffCarveout& w = want_list[i];
    EXPECT_EQ(g.base.value(), w.base.value());
    EXPECT_EQ(g.size, w.size);
    EXPECT_EQ(g.use_case, w.use_case);
    EXPECT_EQ(g.no_map, w.no_map);
    EXPECT_EQ(g.firewall.has_value(), w.firewall.has_value());
    if (g.firewall && w.firewall) {
      EXPECT_EQ(g.firewall->node, w.firewall->node);
      EXPECT_EQ(g.firewall->index, w.firewall->index);
    }
    EXPECT_EQ(g.node, w.node);
  }
}

// --- the table and the directories agree --------------------------------------

TEST(FdtFixtures, EnvironmentNamesBothDirectories) {
  ASSERT_FALSE(DtbDir().empty()) << "RMEM_FDT_FIXTURE_DIR is not set";
  ASSERT_FALSE(DtsDir().empty()) << "RMEM_FDT_FIXTURE_SRC_DIR is not set";
  EXPECT_TRUE(std::filesystem::is_directory(DtbDir())) << DtbDir();
  EXPECT_TRUE(std::filesystem::is_directory(DtsDir())) << DtsDir();
}

TEST(FdtFixtures, EveryDtsSourceHasAnExpectation) {
  ASSERT_TRUE(std::filesystem::is_directory(DtsDir())) << DtsDir();
  for (const std::string& name : StemsWithExtension(DtsDir(), ".dts")) {
    EXPECT_TRUE(Expectations().contains(name)) << name << ".dts has no expectation in the table";
  }
}

TEST(FdtFixtures, EveryCompiledDtbHasAnExpectation) {
  ASSERT_TRUE(std::filesystem::is_directory(DtbDir())) << DtbDir();
  for (const std::string& name : StemsWithExtension(DtbDir(), ".dtb")) {
    EXPECT_TRUE(Expectations().contains(name)) << name << ".dtb has no expectation in the table";
  }
}

TEST(FdtFixtures, EveryExpectationHasItsSourceAndDtb) {
  for (const auto& [name, outcome] : Expectations()) {
    EXPECT_TRUE(std::filesystem::is_regular_file(DtsDir() / (name + ".dts")))
        << name << ".dts is missing from " << DtsDir();
    EXPECT_TRUE(std::filesystem::is_regular_file(DtbDir() / (name + ".dtb")))
        << name << ".dtb was not built into " << DtbDir()
        << " (is it listed in tests/firmware_handoff/meson.build?)";
  }
}

// --- one test per fixture ----------------------------------------------------

class FdtFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(FdtFixture, ParsesToTheContractOutcome) {
  const std::string& name = GetParam();
  auto blob = ReadFile(DtbDir() / (name + ".dtb"));
  ASSERT_TRUE(blob.has_value()) << name << ".dtb is missing from " << DtbDir();
  ExpectOutcome(ParseFdt(*blob), Expectations().at(name));
}

TEST_P(FdtFixture, PlatformReaderAddsTheInitiatorBinding) {
  const std::string& name = GetParam();
  auto blob = ReadFile(DtbDir() / (name + ".dtb"));
  ASSERT_TRUE(blob.has_value()) << name << ".dtb is missing from " << DtbDir();
  const PlatformResult got = ReadPlatformFromFdt(*blob);
  const HandoffResult contract = ParseFdt(*blob);
  const auto* platform = std::get_if<Platform>(&got);
  if (!InitiatorExpectations().contains(name)) {
    // Not an initiator fixture: the contract's verdict, and no initiators.
    ExpectOutcome(platform ? HandoffResult(platform->carveouts)
                           : HandoffResult(std::get<HandoffError>(got)),
                  Expectations().at(name));
    if (platform) {
      EXPECT_TRUE(platform->initiators.empty());
    }
    return;
  }
  const InitiatorOutcome& want = InitiatorExpectations().at(name);
  if (const auto* kind = std::get_if<ErrorKind>(&want)) {
    const auto* error = std::get_if<HandoffError>(&got);
    ASSERT_NE(error, nullptr) << "want reject " << ErrorKindName(*kind) << ", got accept with "
                              << std::get<Platform>(got).initiators.size() << " initiator(s)";
    EXPECT_STREQ(ErrorKindName(error->kind), ErrorKindName(*kind)) << error->message;
    if (InitiatorRejectNames().contains(name)) {
      EXPECT_NE(error->message.find(InitiatorRejectNames().at(name)), std::string::npos)
          << error->message;
    } else {
      EXPECT_NE(error->message.find("/soc/"), std::string::npos)
          << "the message must name the node: " << error->message;
    }
    return;
  }
  ASSERT_NE(platform, nullptr) << "want accept, got " << ErrorKindName(std::get<HandoffError>(got).kind)
                               << ": " << std::get<HandoffError>(got).message;
  EXPECT_EQ(platform->initiators, std::get<std::vector<HandoffInitiator>>(want));
  // The carve-outs are the contract's, untouched.
  ExpectOutcome(HandoffResult(platform->carveouts), Expectations().at(name));
  ASSERT_TRUE(std::holds_alternative<std::vector<HandoffCarveout>>(contract));
}

TEST(FdtFixtures, EveryInitiatorExpectationIsAFixture) {
  for (const auto& [name, outcome] : InitiatorExpectations()) {
    EXPECT_TRUE(Expectations().contains(name)) << name;
  }
  for (const auto& [name, outcome] : Expectations()) {
    EXPECT_EQ(name.starts_with("initiator_"), InitiatorExpectations().contains(name)) << name;
  }
}

std::vector<std::string> FixtureNames() {
  std::vector<std::string> names;
  for (const auto& [name, outcome] : Expectations()) names.push_back(name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Contract, FdtFixture, ::testing::ValuesIn(FixtureNames()),
                         [](const ::testing::TestParamInfo<std::string>& param) { return param.param; });

// --- 3.1 and 3.2: damage a .dts cannot express -------------------------------

constexpr size_t kTotalsizeOffset = 4;  // big-endian u32 in the FDT header
constexpr size_t kOffDtStructOffset = 8;

uint32_t Be32(const std::vector<uint8_t>& b, size_t off) {
  return (uint32_t{b[off]} << 24) | (uint32_t{b[off + 1]} << 16) | (uint32_t{b[off + 2]} << 8) | b[off + 3];
}
void PutBe32(std::vector<uint8_t>& b, size_t off, uint32_t v) {
  b[off] = static_cast<uint8_t>(v >> 24);
  b[off + 1] = static_cast<uint8_t>(v >> 16);
  b[off + 2] = static_cast<uint8_t>(v >> 8);
  b[off + 3] = static_cast<uint8_t>(v);
}

class FdtDamage : public ::testing::Test {
 protected:
  void SetUp() override {
    auto blob = ReadFile(DtbDir() / "accept_two_carveouts_cells22.dtb");
    ASSERT_TRUE(blob.has_value()) << "accept_two_carveouts_cells22.dtb is missing from " << DtbDir();
    dtb_ = std::move(*blob);
    ASSERT_EQ(Be32(dtb_, kTotalsizeOffset), dtb_.size());
  }
  static std::optional<ErrorKind> KindOf(const HandoffResult& r) {
    if (const auto* e = std::get_if<HandoffError>(&r)) return e->kind;
    return std::nullopt;
  }
  std::vector<uint8_t> dtb_;
};

TEST_F(FdtDamage, Intact_Accepts) {
  EXPECT_EQ(KindOf(ParseFdt(dtb_)), std::nullopt) << Describe(ParseFdt(dtb_));
}

TEST_F(FdtDamage, WrongMagic_BadMagic) {
  dtb_[3] ^= 0x01;
  EXPECT_EQ(KindOf(ParseFdt(dtb_)), ErrorKind::kFdtBadMagic);
}

TEST_F(FdtDamage, LittleEndianMagic_BadMagic) {
  const uint8_t le_magic[] = {0xed, 0xfe, 0x0d, 0xd0};
  std::memcpy(dtb_.data(), le_magic, 4);
  EXPECT_EQ(KindOf(ParseFdt(dtb_)), ErrorKind::kFdtBadMagic);
}

TEST_F(FdtDamage, EmptyBuffer_BadMagic) {
  EXPECT_EQ(KindOf(ParseFdt(std::span<const uint8_t>())), ErrorKind::kFdtBadMagic);
}

TEST_F(FdtDamage, ThreeBytesOfAGoodMagic_BadMagic) {
  EXPECT_EQ(KindOf(ParseFdt(std::span<const uint8_t>(dtb_.data(), 3))), ErrorKind::kFdtBadMagic);
}

// Rule 3.1 comes before 3.2: a short blob with a wrong magic is BAD_MAGIC.
TEST_F(FdtDamage, WrongMagicAndTruncated_BadMagicFirst) {
  dtb_[0] = 0;
  EXPECT_EQ(KindOf(ParseFdt(std::span<const uint8_t>(dtb_.data(), 16))), ErrorKind::kFdtBadMagic);
}

TEST_F(FdtDamage, OnlyTheMagic_Corrupt) {
  EXPECT_EQ(KindOf(ParseFdt(std::span<const uint8_t>(dtb_.data(), 4))), ErrorKind::kFdtCorrupt);
}

TEST_F(FdtDamage, TruncatedByOneByte_Corrupt) {
  EXPECT_EQ(KindOf(ParseFdt(std::span<const uint8_t>(dtb_.data(), dtb_.size() - 1))),
            ErrorKind::kFdtCorrupt);
}

TEST_F(FdtDamage, TotalsizeLargerThanLen_Corrupt) {
  PutBe32(dtb_, kTotalsizeOffset, static_cast<uint32_t>(dtb_.size() + 8));
  EXPECT_EQ(KindOf(ParseFdt(dtb_)), ErrorKind::kFdtCorrupt);
}

TEST_F(FdtDamage, BadStructToken_Corrupt) {
  const uint32_t off_struct = Be32(dtb_, kOffDtStructOffset);
  ASSERT_EQ(Be32(dtb_, off_struct), 1u);  // FDT_BEGIN_NODE of the root
  PutBe32(dtb_, off_struct, 0x0f);         // no such token
  EXPECT_EQ(KindOf(ParseFdt(dtb_)), ErrorKind::kFdtCorrupt);
}

// len may exceed totalsize (e.g. a transfer-list entry padded out): the bytes
// after the tree are not part of it.
TEST_F(FdtDamage, TrailingBytesAfterTotalsize_Accepts) {
  dtb_.resize(dtb_.size() + 64, 0xa5);
  EXPECT_EQ(KindOf(ParseFdt(dtb_)), std::nullopt) << Describe(ParseFdt(dtb_));
}

// Only parse_tl promises an 8-byte aligned buffer; parse_fdt must cope with
// any address (a transfer-list entry with te_hdr 12 puts its FDT at 4 mod 8).
TEST_F(FdtDamage, MisalignedBuffer_SameOutcome) {
  std::vector<uint64_t> storage(dtb_.size() / 8 + 2);
  auto* bytes = reinterpret_cast<uint8_t*>(storage.data()) + 4;
  std::memcpy(bytes, dtb_.data(), dtb_.size());
  ExpectOutcome(ParseFdt(std::span<const uint8_t>(bytes, dtb_.size())),
                Expectations().at("accept_two_carveouts_cells22"));
}

}  // namespace
}  // namespace rmem::firmware_handoff
