import java.io.InputStream;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.SecureRandom;
import java.time.Instant;
import java.util.Base64;
import java.util.List;
import java.util.Set;

import javax.activation.DataHandler;
import javax.activation.FileDataSource;
import javax.xml.namespace.QName;
import javax.xml.soap.SOAPElement;
import javax.xml.soap.SOAPEnvelope;
import javax.xml.soap.SOAPHeader;
import javax.xml.ws.BindingProvider;
import javax.xml.ws.Holder;
import javax.xml.ws.handler.Handler;
import javax.xml.ws.handler.MessageContext;
import javax.xml.ws.handler.soap.SOAPHandler;
import javax.xml.ws.handler.soap.SOAPMessageContext;
import javax.xml.ws.soap.MTOMFeature;

import sealgate.client.SealResult;
import sealgate.client.SealgateFault_Exception;
import sealgate.client.SealgatePortType;
import sealgate.client.SealgateService;
import sealgate.client.VerificationReport;

/**
 * A JAX-WS client of sealgate made by wsimport from /soap?wsdl: seals a PDF
 * over SOAP 1.1 and 1.2 with MTOM, a WS-Security UsernameToken added by a
 * SOAP handler, and verifies the result. usage: Main URL ID SECRET PDF OUTDIR
 */
public class Main {
    static final String WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
    static final String WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
    static final String PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0";

    /** Adds a UsernameToken (PasswordText, Nonce, Created) to every request. */
    static class UsernameToken implements SOAPHandler<SOAPMessageContext> {
        final String user, password;
        final SecureRandom random = new SecureRandom();

        UsernameToken(String user, String password) {
            this.user = user;
            this.password = password;
        }

        public boolean handleMessage(SOAPMessageContext ctx) {
            if (!(Boolean) ctx.get(MessageContext.MESSAGE_OUTBOUND_PROPERTY)) {
                return true;
            }
            try {
                SOAPEnvelope env = ctx.getMessage().getSOAPPart().getEnvelope();
                SOAPHeader header = env.getHeader() != null ? env.getHeader() : env.addHeader();
                SOAPElement token = header.addChildElement("Security", "wsse", WSSE).addChildElement("UsernameToken", "wsse");
                token.addChildElement("Username", "wsse").addTextNode(user);
                token.addChildElement("Password", "wsse").addTextNode(password).setAttribute("Type", PROFILE + "#PasswordText");
                byte[] nonce = new byte[16];
                random.nextBytes(nonce);
                token.addChildElement("Nonce", "wsse").addTextNode(Base64.getEncoder().encodeToString(nonce));
                token.addChildElement("Created", "wsu", WSU).addTextNode(Instant.now().toString());
                ctx.getMessage().saveChanges();
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
            return true;
        }

        public boolean handleFault(SOAPMessageContext ctx) { return true; }
        public void close(MessageContext ctx) {}
        public Set<QName> getHeaders() { return Set.of(new QName(WSSE, "Security")); }
    }

    public static void main(String[] args) throws Exception {
        String url = args[0], id = args[1], secret = args[2];
        Path pdf = Path.of(args[3]), out = Path.of(args[4]);
        SealgateService service = new SealgateService(new URL(url + "/soap?wsdl"));
        for (String binding : List.of("soap11", "soap12")) {
            SealgatePortType port = binding.equals("soap11")
                ? service.getSealgateSoap11(new MTOMFeature(true))
                : service.getSealgateSoap12(new MTOMFeature(true));
            BindingProvider bp = (BindingProvider) port;
            bp.getRequestContext().put(BindingProvider.ENDPOINT_ADDRESS_PROPERTY, url + "/soap");
            @SuppressWarnings("rawtypes")
            List<Handler> chain = bp.getBinding().getHandlerChain();
            chain.add(new UsernameToken(id, secret));
            bp.getBinding().setHandlerChain(chain);

            Holder<SealResult> result = new Holder<>();
            Holder<DataHandler> sealed = new Holder<>();
            port.sealDocument(null, "pades", null, "invoice.pdf", null, 1, 10.0, 10.0, 180.0, 50.0, "Invoice", "Java", null,
                new DataHandler(new FileDataSource(pdf.toFile())), result, sealed);
            Path file = out.resolve(binding + ".pdf");
            try (InputStream in = sealed.value.getInputStream()) {
                Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
            }
            VerificationReport rep = port.verifyDocument(new DataHandler(new FileDataSource(file.toFile())), null);
            System.out.println(binding + " sealed=" + result.value.getLevel() + " size=" + result.value.getSize()
                + " valid=" + rep.isValid() + " kind=" + rep.getKind() + " seals=" + String.join(",", port.listSeals()));
        }
        // The intruder case: a fault with the stable code in its detail.
        SealgatePortType port = service.getSealgateSoap11();
        BindingProvider bp = (BindingProvider) port;
        bp.getRequestContext().put(BindingProvider.ENDPOINT_ADDRESS_PROPERTY, url + "/soap");
        @SuppressWarnings("rawtypes")
        List<Handler> chain = bp.getBinding().getHandlerChain();
        chain.add(new UsernameToken(id, "sgp_wrong"));
        bp.getBinding().setHandlerChain(chain);
        try {
            port.listSeals();
            System.out.println("fault=none");
        } catch (SealgateFault_Exception e) {
            System.out.println("fault=" + e.getFaultInfo().getCode());
        }
    }
}
