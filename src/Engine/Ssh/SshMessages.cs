using System.Text;

namespace KtConnect.Engine.Ssh;

/// <summary>
/// Parsers of every message the client receives, as pure functions over a payload (message number
/// included). They either return a value or throw <see cref="SshErrorIds.MalformedMessage"/>; the fuzz
/// tests drive them directly through <see cref="ParseAny"/>.
/// </summary>
internal static class SshMessages
{
    internal sealed record KexInit(string[] Kex, string[] HostKey, string[] EncC2S, string[] EncS2C, string[] MacC2S, string[] MacS2C,
        string[] CompC2S, string[] CompS2C, bool FirstKexFollows);

    internal sealed record EcdhReply(byte[] HostKey, byte[] Q, byte[] Signature);

    internal sealed record ChannelOpen(string Type, uint Sender, uint Window, uint MaxPacket, string Address, uint Port, string Originator, uint OriginatorPort);

    internal sealed record ChannelRequest(uint Recipient, string Type, bool WantReply, uint ExitStatus, string? Signal, string? SignalMessage);

    public static KexInit ParseKexInit(ReadOnlySpan<byte> payload)
    {
        var r = Start(payload, SshMsg.KexInit);
        r.ReadBytes(16);
        var k = new KexInit(r.ReadNameList(), r.ReadNameList(), r.ReadNameList(), r.ReadNameList(), r.ReadNameList(), r.ReadNameList(),
            r.ReadNameList(), r.ReadNameList(), false);
        r.ReadNameList();
        r.ReadNameList();
        var follows = r.ReadBoolean();
        r.ReadUInt32();
        return k with { FirstKexFollows = follows };
    }

    public static EcdhReply ParseEcdhReply(ReadOnlySpan<byte> payload)
    {
        var r = Start(payload, SshMsg.KexEcdhReply);
        return new EcdhReply(r.ReadString().ToArray(), r.ReadString().ToArray(), r.ReadString().ToArray());
    }

    public static SshDisconnectException ParseDisconnect(ReadOnlySpan<byte> payload)
    {
        var r = Start(payload, SshMsg.Disconnect);
        var reason = r.ReadUInt32();
        var text = r.Remaining > 0 ? SafeText(r.ReadString()) : "";
        return new SshDisconnectException(reason, text);
    }

    /// <summary>EXT_INFO (RFC 8308): returns server-sig-algs, or null when absent.</summary>
    public static HashSet<string>? ParseExtInfo(ReadOnlySpan<byte> payload)
    {
        var r = Start(payload, SshMsg.ExtInfo);
        var n = r.ReadUInt32();
        HashSet<string>? sigAlgs = null;
        for (uint i = 0; i < n; i++)
        {
            var name = r.ReadString();
            var value = r.ReadString();
            if (name.SequenceEqual("server-sig-algs"u8))
                sigAlgs = Encoding.ASCII.GetString(value).Split(',', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
        }
        return sigAlgs;
    }

    public static string[] ParseUserauthFailure(ReadOnlySpan<byte> payload)
    {
        var r = Start(payload, SshMsg.UserauthFailure);
        var methods = r.ReadNameList();
        r.ReadBoolean();
        return methods;
    }

    public static (uint Recipient, uint Sender, uint Window, uint MaxPacket) ParseOpenConfirmation(ReadOnlySpan<byte> payload)
    {
        var r = Start(payload, SshMsg.ChannelOpenConfirmation);
        return (r.ReadUInt32(), r.ReadUInt32(), r.ReadUInt32(), r.ReadUInt32());
    }

    public static (uint Recipient, uint Reason, string Description) ParseOpenFailure(ReadOnlySpan<byte> payload)
    {
        var r = Start(payload, SshMsg.ChannelOpenFailure);
        var id = r.ReadUInt32();
        var reason = r.ReadUInt32();
        var desc = r.Remaining > 0 ? SafeText(r.ReadString()) : "";
        return (id, reason, desc);
    }

    /// <summary>CHANNEL_DATA / EXTENDED_DATA: recipient and the data's offset and length inside the payload.</summary>
    public static (uint Recipient, int Offset, int Length) ParseData(ReadOnlySpan<byte> payload)
    {
        var extended = payload.Length > 0 && payload[0] == SshMsg.ChannelExtendedData;
        var r = Start(payload, extended ? SshMsg.ChannelExtendedData : SshMsg.ChannelData);
        var id = r.ReadUInt32();
        if (extended) r.ReadUInt32();
        var data = r.ReadString();
        return (id, 1 + r.Position - data.Length, data.Length);
    }

    /// <summary>WINDOW_ADJUST, EOF, CLOSE, SUCCESS, FAILURE: recipient (and the adjustment).</summary>
    public static (uint Recipient, uint Value) ParseChannelSimple(ReadOnlySpan<byte> payload)
    {
        var r = Start(payload, payload.IsEmpty ? (byte)0 : payload[0]);
        var id = r.ReadUInt32();
        var v = payload[0] == SshMsg.ChannelWindowAdjust ? r.ReadUInt32() : 0;
        return (id, v);
    }

    public static ChannelRequest ParseChannelRequest(ReadOnlySpan<byte> payload)
    {
        var r = Start(payload, SshMsg.ChannelRequest);
        var id = r.ReadUInt32();
        var type = Encoding.ASCII.GetString(r.ReadString());
        var wantReply = r.ReadBoolean();
        uint status = 0;
        string? signal = null, msg = null;
        if (type == "exit-status")
        {
            status = r.ReadUInt32();
        }
        else if (type == "exit-signal")
        {
            signal = SafeText(r.ReadString());
            r.ReadBoolean();
            msg = SafeText(r.ReadString());
        }
        return new ChannelRequest(id, type, wantReply, status, signal, msg);
    }

    public static (string Name, bool WantReply) ParseGlobalRequest(ReadOnlySpan<byte> payload)
    {
        var r = Start(payload, SshMsg.GlobalRequest);
        var name = SafeText(r.ReadString());
        return (name, r.ReadBoolean());
    }

    public static ChannelOpen ParseChannelOpen(ReadOnlySpan<byte> payload)
    {
        var r = Start(payload, SshMsg.ChannelOpen);
        var type = SafeText(r.ReadString());
        var sender = r.ReadUInt32();
        var window = r.ReadUInt32();
        var max = r.ReadUInt32();
        if (type != "forwarded-tcpip") return new ChannelOpen(type, sender, window, max, "", 0, "", 0);
        var addr = SafeText(r.ReadString());
        var port = r.ReadUInt32();
        var origin = SafeText(r.ReadString());
        var originPort = r.ReadUInt32();
        return new ChannelOpen(type, sender, window, max, addr, port, origin, originPort);
    }

    /// <summary>Parses a payload with whichever parser its message number selects (fuzzing entry point).</summary>
    public static void ParseAny(ReadOnlySpan<byte> payload)
    {
        if (payload.IsEmpty) throw SshException.Malformed("empty payload");
        switch (payload[0])
        {
            case SshMsg.Disconnect: ParseDisconnect(payload); break;
            case SshMsg.ExtInfo: ParseExtInfo(payload); break;
            case SshMsg.KexInit: ParseKexInit(payload); break;
            case SshMsg.KexEcdhReply:
            {
                var e = ParseEcdhReply(payload);
                SshPublicKey.FromBlob(e.HostKey);
                break;
            }
            case SshMsg.UserauthFailure: ParseUserauthFailure(payload); break;
            case SshMsg.GlobalRequest: ParseGlobalRequest(payload); break;
            case SshMsg.ChannelOpen: ParseChannelOpen(payload); break;
            case SshMsg.ChannelOpenConfirmation: ParseOpenConfirmation(payload); break;
            case SshMsg.ChannelOpenFailure: ParseOpenFailure(payload); break;
            case SshMsg.ChannelData or SshMsg.ChannelExtendedData: ParseData(payload); break;
            case SshMsg.ChannelWindowAdjust or SshMsg.ChannelEof or SshMsg.ChannelClose or SshMsg.ChannelSuccess or SshMsg.ChannelFailure:
                ParseChannelSimple(payload);
                break;
            case SshMsg.ChannelRequest: ParseChannelRequest(payload); break;
            default:
                SshPublicKey.FromBlob(payload);
                break;
        }
    }

    private static SshReader Start(ReadOnlySpan<byte> payload, byte msg)
    {
        if (payload.IsEmpty || payload[0] != msg) throw SshException.Malformed($"expected message {msg}");
        return new SshReader(payload[1..]);
    }

    /// <summary>Peer text for messages and logs: bounded and with control characters replaced.</summary>
    internal static string SafeText(ReadOnlySpan<byte> s)
    {
        var t = Encoding.UTF8.GetString(s[..Math.Min(s.Length, 1024)]);
        return string.Create(t.Length, t, static (dst, src) =>
        {
            for (var i = 0; i < src.Length; i++) dst[i] = char.IsControl(src[i]) && src[i] != '\n' ? '?' : src[i];
        });
    }
}
