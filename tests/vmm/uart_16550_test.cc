#include "vmm/devices/uart_16550.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace rmem::vmm {
namespace {

class LevelRecorder : public IrqLine {
 public:
  void SetLevel(bool high) override { levels.push_back(high); }
  std::vector<bool> levels;
};

class UartTest : public ::testing::Test {
 protected:
  uint8_t Read(uint64_t reg) {
    uint8_t b = 0xff;
    uart_.MmioRead(reg, std::span<uint8_t>(&b, 1));
    return b;
  }
  void Write(uint64_t reg, uint8_t v) { uart_.MmioWrite(reg, std::span<const uint8_t>(&v, 1)); }
  bool IrqHigh() const { return !irq_.levels.empty() && irq_.levels.back(); }

  std::string out_;
  LevelRecorder irq_;
  Uart16550 uart_{[this](uint8_t b) { out_.push_back(static_cast<char>(b)); }, &irq_};
};

TEST_F(UartTest, TransmitsBytesAndIsAlwaysReady) {
  for (char c : std::string("hi\n")) Write(0, static_cast<uint8_t>(c));
  EXPECT_EQ(out_, "hi\n");
  EXPECT_EQ(Read(5) & 0x60, 0x60);  // THRE and TEMT
  EXPECT_EQ(Read(0), 0);            // never any receive data
  EXPECT_TRUE(irq_.levels.empty());  // no interrupt while IER is 0
}

TEST_F(UartTest, DivisorLatchDoesNotTransmit) {
  Write(3, 0x80);  // DLAB
  Write(0, 0x01);
  Write(1, 0x00);
  EXPECT_EQ(Read(0), 0x01);
  Write(3, 0x03);
  EXPECT_TRUE(out_.empty());
}

TEST_F(UartTest, ThreInterruptFollows16550Rules) {
  Write(1, 0x02);  // enabling THRI while THR is empty raises it
  EXPECT_TRUE(IrqHigh());
  EXPECT_EQ(Read(2) & 0x0f, 0x02);  // IIR says THRE, and reading acknowledges
  EXPECT_FALSE(IrqHigh());
  EXPECT_EQ(Read(2) & 0x0f, 0x01);  // nothing pending now
  Write(0, 'x');                    // THR empties again at once: raised again
  EXPECT_TRUE(IrqHigh());
  Write(1, 0x00);  // disabling drops the line
  EXPECT_FALSE(IrqHigh());
}

TEST_F(UartTest, FifoBitsAndLoopbackModemLines) {
  Write(2, 0x01);
  EXPECT_EQ(Read(2) & 0xc0, 0xc0);
  Write(4, 0x10 | 0x0f);  // loopback with DTR, RTS, OUT1, OUT2
  EXPECT_EQ(Read(6) & 0xf0, 0xf0);
  Write(0, 'z');  // loopback: nothing on the line
  EXPECT_TRUE(out_.empty());
  Write(4, 0x00);
  EXPECT_EQ(Read(6), 0xb0);  // DCD, DSR, CTS: a peer is connected
}

TEST_F(UartTest, OutOfRangeOffsetsReadZeroAndIgnoreWrites) {
  uint8_t four[4] = {1, 1, 1, 1};
  uart_.MmioRead(0x100, four);
  EXPECT_EQ(four[0] | four[1] | four[2] | four[3], 0);
  uart_.MmioWrite(0x100, four);
  EXPECT_TRUE(out_.empty());
}

}  // namespace
}  // namespace rmem::vmm
