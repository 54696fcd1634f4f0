using KtConnect.Engine.Ssh;

namespace KtConnect.Tests.Unit.Ssh;

public sealed class SshWireTests
{
    [Theory]
    [InlineData("", "00000000")]
    [InlineData("00", "00000000")]
    [InlineData("0000007f", "000000017f")]
    [InlineData("80", "000000020080")]
    [InlineData("00ff01", "0000000300ff01")]
    [InlineData("123456", "00000003123456")]
    public void Mpint_StripsZerosAndAddsSignByte(string magnitude, string expected)
    {
        using var w = new SshWriter();
        w.MpintUnsigned(Convert.FromHexString(magnitude));
        Assert.Equal(expected, Convert.ToHexString(w.Span).ToLowerInvariant());
        var r = new SshReader(w.Span);
        Assert.Equal(Convert.FromHexString(magnitude).SkipWhile(b => b == 0).ToArray(), r.ReadMpintUnsigned().ToArray());
    }

    [Fact]
    public void Mpint_NegativeRejected()
    {
        var e = Assert.Throws<SshException>(() => new SshReader([0, 0, 0, 1, 0x80]).ReadMpintUnsigned());
        Assert.Equal(SshErrorIds.MalformedMessage, e.ErrorId);
    }

    [Theory]
    [InlineData(new byte[] { 0, 0, 0, 5, 1, 2 })]
    [InlineData(new byte[] { 0xff, 0xff, 0xff, 0xff })]
    [InlineData(new byte[] { 0, 0 })]
    public void String_BeyondEnd_IsMalformed(byte[] data)
    {
        var e = Assert.Throws<SshException>(() => new SshReader(data).ReadString());
        Assert.Equal(SshErrorIds.MalformedMessage, e.ErrorId);
    }

    [Fact]
    public void NameList_RoundTripsAndRejectsEmptyNames()
    {
        using var w = new SshWriter();
        w.NameList(["a", "b-c@x"]).String("a,,b");
        var r = new SshReader(w.Span);
        Assert.Equal(["a", "b-c@x"], r.ReadNameList());
        Assert.Equal(SshErrorIds.MalformedMessage, Assert.Throws<SshException>(() => new SshReader(w.Span[13..]).ReadNameList()).ErrorId);
    }

    [Fact]
    public void FirstCommon_UsesClientPreference()
    {
        Assert.Equal("b", SshAlgorithms.FirstCommon(["b", "a"], ["a", "b"]));
        Assert.Null(SshAlgorithms.FirstCommon(["x"], ["a"]));
    }

    [Fact]
    public void ParseData_FindsPayload()
    {
        using var w = new SshWriter();
        w.Byte(95).UInt32(7).UInt32(1).String("hello"u8);
        var (id, offset, length) = SshMessages.ParseData(w.Span);
        Assert.Equal(7u, id);
        Assert.Equal("hello"u8.ToArray(), w.Span.Slice(offset, length).ToArray());
    }
}
