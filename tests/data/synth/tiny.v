module tiny(input clk, input [7:0] a, input [7:0] b, output reg [7:0] y, output reg hit);
  reg [7:0] ra, rb;
  always @(posedge clk) begin
    ra <= a;
    rb <= b;
    y <= ra * rb + y;
    hit <= (ra + rb) > y;
  end
endmodule
